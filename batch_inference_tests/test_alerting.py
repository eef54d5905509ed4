"""The alert path against a real Alertmanager and a real webhook behind it: failed Dagster runs in a
real instance become alerts, which are kept until Alertmanager accepts them and reach the webhook once."""


import json
import shutil
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from batch_inference.alerting import (
    RUN_FAILED,
    Alert,
    AlertQueue,
    post_alerts,
    runbook_named_in,
)
from batch_inference.components.platform_sensors import alert_sensor
from batch_inference_tests.alertmanager_service import alertmanager, alertmanager_binary, webhook_receiver
from batch_inference_tests.dagster_dev import free_port

DAILY = dg.DailyPartitionsDefinition(start_date="2026-11-01")


with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)  # backfill_policy: ranged runs are the point here

    @dg.asset(key=["demo_pipe", "predictions"], partitions_def=DAILY,
              backfill_policy=dg.BackfillPolicy.single_run())
    def failing_predictions(context: dg.AssetExecutionContext) -> None:
        """Fails as a bad landing file does: a permanent error naming its runbook."""
        raise dg.Failure(description=f"BadInputFileError: landing file for {context.partition_key_range} is "
                         "not Parquet. Runbook: docs/runbooks/F2.md", allow_retries=False)


DEFS = dg.Definitions(assets=[failing_predictions])


def _alert(run_id: str = "run-1", days: tuple[str, ...] = ("2026-11-20",)) -> Alert:
    return Alert(alertname=RUN_FAILED, pipeline="demo_pipe", asset="demo_pipe/predictions", runbook="F2",
                 summary="demo_pipe: run failed", run_id=run_id, occurred_at=1_795_000_000.0, partitions=days)


class _Flaky(BaseHTTPRequestHandler):
    """An HTTP endpoint that answers 503 to the first `server.failures` posts, then 200."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts += 1
        self.send_response(503 if self.server.posts <= self.server.failures else 200)
        self.end_headers()

    def log_message(self, *args) -> None:
        return


@pytest.fixture
def flaky() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    server.posts, server.failures = 0, 2
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_an_alert_names_its_days_and_runbook():
    alert = _alert(days=("2026-11-03", "2026-11-01", "2026-11-02")).to_alertmanager()
    assert alert["labels"] == {"alertname": RUN_FAILED, "pipeline": "demo_pipe", "asset": "demo_pipe/predictions",
                               "partition": "2026-11-01..2026-11-03", "severity": "page", "runbook": "F2",
                               "run_id": "run-1"}
    assert alert["annotations"]["partitions"] == "2026-11-01,2026-11-02,2026-11-03"
    assert alert["annotations"]["runbook_url"].endswith("docs/runbooks/F2.md")
    assert "endsAt" not in alert and alert["startsAt"].endswith("Z")
    assert runbook_named_in("IOError. Runbook: docs/runbooks/F6.md") == "F6" and runbook_named_in("boom") is None
    with pytest.raises(ValueError, match="severity"):
        Alert(**{**_alert().to_json(), "severity": "sms"})
    with pytest.raises(ValueError, match="runbook"):
        Alert(**{**_alert().to_json(), "runbook": "F99"})


def test_an_alert_leaves_the_queue_only_on_a_2xx_answer(flaky):
    url = f"http://127.0.0.1:{flaky.server_address[1]}"
    queue = AlertQueue(after="")
    queue.add([_alert()])
    for _ in range(2):  # 503, 503: kept, and the queue survives its cursor
        sent, delivery = queue.flush(url)
        assert sent == [] and delivery.status == 503 and len(queue.pending) == 1
        queue = AlertQueue.from_cursor(queue.to_cursor())
    sent, delivery = queue.flush(url)
    assert delivery.accepted and [a.run_id for a in sent] == ["run-1"] and queue.pending == []
    assert queue.flush(url) == ([], None) and flaky.posts == 3


def test_nothing_listening_is_a_failed_delivery_not_an_error():
    delivery = post_alerts(f"http://127.0.0.1:{free_port()}", [_alert()], timeout_s=2)
    assert delivery.status == 0 and not delivery.accepted and "Connection refused" in delivery.detail


def test_a_full_queue_drops_the_oldest_and_says_which():
    queue = AlertQueue(after="")
    dropped = queue.add([_alert(run_id=f"run-{i}") for i in range(AlertQueue.MAX_PENDING + 2)])
    assert [a.run_id for a in dropped] == ["run-0", "run-1"] and len(queue.pending) == AlertQueue.MAX_PENDING


def _tick(instance: dg.DagsterInstance, cursor: str | None) -> tuple[str, str]:
    """One evaluation of the alert sensor, as the daemon does it: (new cursor, skip message)."""
    result = alert_sensor()(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=DEFS))
    return result.cursor, result.skip_reason.skip_message


def _fail(instance: dg.DagsterInstance, **kwargs) -> str:
    result = dg.materialize([failing_predictions], instance=instance, raise_on_error=False, **kwargs)
    assert not result.success
    return result.run_id


def _wait_for(hook, count: int) -> None:
    for _ in range(300):
        if len(hook.alerts) >= count:
            return
        time.sleep(0.1)


def test_alertmanager_down_for_several_ticks_then_up_delivers_each_alert_once(tmp_path, monkeypatch):
    alertmanager_binary()
    port = free_port()
    monkeypatch.setenv("BATCH_INFERENCE_ALERTMANAGER_URL", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("BATCH_INFERENCE_PUSHGATEWAY_URL", raising=False)
    with dg.instance_for_test() as instance, webhook_receiver() as (hook_url, hook):
        cursor, message = _tick(instance, None)
        assert "started" in message
        day_run = _fail(instance, partition_key="2026-11-20")
        range_run = _fail(instance, tags={"dagster/asset_partition_range_start": "2026-11-01",
                                          "dagster/asset_partition_range_end": "2026-11-03"})
        for _ in range(3):  # Alertmanager is down: nothing is lost, nothing is marked sent
            cursor, message = _tick(instance, cursor)
            assert len(json.loads(cursor)["pending"]) == 2, message
        with alertmanager(tmp_path / "am", hook_url, port=port):
            cursor, message = _tick(instance, cursor)
            assert "2 alert(s) sent, 0 queued" in message
            _wait_for(hook, 2)
            for _ in range(3):  # later ticks post nothing again
                cursor, message = _tick(instance, cursor)
                assert "0 alert(s) sent, 0 queued" in message
            time.sleep(5)  # two more group intervals: time for a duplicate to show up, if there were one
        alerts = {a["labels"]["run_id"]: a for a in hook.alerts}
        assert len(hook.alerts) == 2 and set(alerts) == {day_run, range_run}
        day, ranged = alerts[day_run], alerts[range_run]
        assert day["labels"]["partition"] == "2026-11-20" and day["labels"]["runbook"] == "F2"
        assert day["labels"]["pipeline"] == "demo_pipe" and day["labels"]["asset"] == "demo_pipe/predictions"
        assert day["annotations"]["runbook_url"].endswith("runbooks/F2.md")
        assert ranged["labels"]["partition"] == "2026-11-01..2026-11-03"
        assert ranged["annotations"]["partitions"] == "2026-11-01,2026-11-02,2026-11-03"
        assert "3 days" in ranged["annotations"]["summary"]


def test_a_hung_pushgateway_does_not_hold_the_alerts_back(tmp_path, monkeypatch):
    """A Pushgateway that accepts connections and never answers: the failures are still alerted."""
    with socket.socket() as hung, webhook_receiver() as (hook_url, hook), \
            alertmanager(tmp_path / "am", hook_url) as url, dg.instance_for_test() as instance:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        monkeypatch.setenv("BATCH_INFERENCE_PUSHGATEWAY_URL", f"http://127.0.0.1:{hung.getsockname()[1]}")
        monkeypatch.setenv("BATCH_INFERENCE_ALERTMANAGER_URL", url)
        cursor, _ = _tick(instance, None)
        runs = {_fail(instance, partition_key=day) for day in ("2026-11-20", "2026-11-21", "2026-11-22")}
        cursor, message = _tick(instance, cursor)
        assert "3 new failure(s); 3 alert(s) sent, 0 queued" in message
        _wait_for(hook, 3)
        assert {a["labels"]["run_id"] for a in hook.alerts} == runs


SHIPPED = Path(__file__).resolve().parents[1] / "deploy" / "alertmanager" / "alertmanager.yml"


@pytest.mark.parametrize(("labels", "receivers"), [
    ({"alertname": RUN_FAILED, "severity": "page", "pipeline": "p"}, "pager,team-channel"),
    ({"alertname": RUN_FAILED, "severity": "page", "pipeline": "p", "backfill": "abc"}, "tickets"),
    ({"alertname": "BatchInferenceQuarantineRateHigh", "severity": "ticket"}, "tickets"),
])
def test_the_shipped_alertmanager_config_is_valid_and_routes_pages_and_backfills(labels, receivers):
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool comes with Debian's prometheus-alertmanager, installed by .ci/run")
    check = subprocess.run([amtool, "check-config", str(SHIPPED)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    routed = subprocess.run([amtool, "config", "routes", "test", f"--config.file={SHIPPED}",
                             *(f"{k}={v}" for k, v in labels.items())], capture_output=True, text=True)
    assert routed.returncode == 0 and routed.stdout.strip() == receivers, routed.stdout + routed.stderr
