"""The alert path end to end: real failed runs of the project's jobs in a real instance, the project's
alert sensor, a real Alertmanager and a real webhook receiver behind it."""

import json
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest

from batch_inference.components.platform_sensors import alert_sensor
from batch_inference.observability import flush_pushes
from batch_inference.pipelines import write_landing_file
from batch_inference_tests.alertmanager_service import alertmanager, webhook_receiver
from batch_inference_tests.conftest import job, project_defs

pytestmark = pytest.mark.integration  # end to end through Dagster: the full tier (`make test`)


def _tick(instance: dg.DagsterInstance, defs: dg.Definitions, cursor: str | None) -> tuple[str, str]:
    """One evaluation of the alert sensor, as the daemon does it: (new cursor, skip message)."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    result = alert_sensor()(context)
    return result.cursor, result.skip_reason.skip_message


def test_a_failed_run_a_bad_file_and_a_failed_blocking_check_reach_the_webhook_once(
        home, landed, registry, dagster_instance, monkeypatch, tmp_path):
    instance, defs = dagster_instance, project_defs(home)
    day, other = landed
    with webhook_receiver() as (hook_url, hook), alertmanager(tmp_path / "am", hook_url) as url:
        monkeypatch.setenv("BATCH_INFERENCE_ALERTMANAGER_URL", url)
        cursor, _ = _tick(instance, defs, None)
        # A failed run: scoring a day whose features were never computed.
        failed = defs.resolve_job_def(job("score_day")).execute_in_process(
            partition_key=day, instance=instance, raise_on_error=False)
        assert not failed.success
        # A failed blocking check: the landing file grew after ingest, so completeness fails.
        ingest = defs.resolve_job_def(job("ingest_day"))
        assert ingest.execute_in_process(partition_key=other, instance=instance).success
        landing = Path(home.landing_uri) / f"transactions_{other}.parquet"
        shutil.copy(landing, tmp_path / "orig.parquet")
        write_landing_file(other, 3_500, Path(home.landing_uri))
        checked = defs.resolve_job_def(job("score_day")).execute_in_process(
            partition_key=other, instance=instance, raise_on_error=False)
        assert not checked.success
        # A bad file: the day's landing file is not Parquet (runbook F2, not F1).
        (Path(home.landing_uri) / f"transactions_{day}.parquet").write_bytes(b"not a parquet file")
        bad = ingest.execute_in_process(partition_key=day, instance=instance, raise_on_error=False)
        assert not bad.success

        cursor, message = _tick(instance, defs, cursor)
        assert "3 new failure(s); 3 alert(s) sent" in message, message
        for _ in range(300):
            if len(hook.alerts) >= 3:
                break
            time.sleep(0.1)
        cursor, message = _tick(instance, defs, cursor)
        assert "0 alert(s) sent, 0 queued" in message
        time.sleep(5)  # two more group intervals: time for a duplicate to show up, if there were one
    alerts = {a["labels"]["run_id"]: a for a in hook.alerts}
    assert len(hook.alerts) == 3 and set(alerts) == {failed.run_id, checked.run_id, bad.run_id}
    run_alert, check_alert, bad_alert = alerts[failed.run_id], alerts[checked.run_id], alerts[bad.run_id]
    assert run_alert["labels"]["alertname"] == "BatchInferenceRunFailed"
    assert run_alert["labels"]["partition"] == day and run_alert["labels"]["pipeline"] == "card_fraud"
    assert check_alert["labels"]["alertname"] == "BatchInferenceBlockingCheckFailed"
    assert check_alert["labels"]["check"] == "predictions_completeness"
    assert check_alert["labels"]["asset"] == "card_fraud/predictions" and check_alert["labels"]["partition"] == other
    assert check_alert["labels"]["runbook"] == "F2"
    assert check_alert["annotations"]["runbook_url"].endswith("docs/runbooks/F2.md")
    assert bad_alert["labels"]["runbook"] == "F2" and bad_alert["labels"]["asset"] == "card_fraud/transactions"
    assert f"transactions_{day}.parquet" in bad_alert["annotations"]["description"]


def test_without_alertmanager_failures_are_only_counted(home, dagster_instance, monkeypatch):
    monkeypatch.delenv("BATCH_INFERENCE_ALERTMANAGER_URL", raising=False)
    cursor, _ = _tick(dagster_instance, project_defs(home), None)
    cursor, message = _tick(dagster_instance, project_defs(home), cursor)
    assert "alerts off" in message and json.loads(cursor)["pending"] == []


def test_every_failed_run_is_counted_in_the_metrics(home, landed, dagster_instance, monkeypatch):
    """The success-rate SLO and the storage-error alert need failures pushed, alerting configured or not."""
    import socket
    import subprocess
    import urllib.request

    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        pytest.skip("Debian's prometheus-pushgateway is installed by .ci/run")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gateway = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(50):
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1)  # noqa: S310 - loopback
                break
            except OSError:
                time.sleep(0.1)
        monkeypatch.setenv("BATCH_INFERENCE_PUSHGATEWAY_URL", url)
        monkeypatch.delenv("BATCH_INFERENCE_ALERTMANAGER_URL", raising=False)
        defs = project_defs(home)
        cursor, _ = _tick(dagster_instance, defs, None)
        failed = defs.resolve_job_def(job("score_day")).execute_in_process(
            partition_key=landed[0], instance=dagster_instance, raise_on_error=False)
        assert not failed.success
        _tick(dagster_instance, defs, cursor)
        assert flush_pushes(timeout_s=30)  # pushes are sent in the background
        metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()  # noqa: S310
        assert any(line.startswith("batch_inference_runs_total") and 'status="failure"' in line
                   and 'pipeline="card_fraud"' in line and line.endswith(" 1") for line in metrics.splitlines())
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)
