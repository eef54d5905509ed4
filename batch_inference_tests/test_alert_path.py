"""The alert path end to end: real failed runs in a real instance, the project's run-failure sensor,
and a real HTTP receiver that records what arrives."""

import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from batch_inference.components.platform_sensors import alert_flush, alert_on_failure
from batch_inference.pipelines import write_landing_file
from batch_inference_tests.conftest import job, project_defs

pytestmark = pytest.mark.integration  # end to end through Dagster: the full tier (`make test`)


@pytest.fixture
def receiver():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def _fire(instance: dg.DagsterInstance, run_id: str) -> None:
    """Evaluate the run-failure sensor for one failed run, as the daemon does."""
    run = instance.get_run_by_id(run_id)
    event = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[-1].dagster_event
    context = dg.build_run_status_sensor_context(sensor_name="alert_on_failure", dagster_instance=instance,
                                                 dagster_run=run, dagster_event=event).for_run_failure()
    alert_on_failure(context)


def test_a_failed_run_and_a_failed_blocking_check_each_reach_the_webhook_once(
        home, landed, registry, dagster_instance, receiver, monkeypatch, tmp_path):
    url, received = receiver
    config = tmp_path / "alerting.yaml"
    config.write_text(json.dumps({"group_window_seconds": 2, "routes": [
        {"kinds": ["check_failure"], "severity": "page", "webhook": url},
        {"severity": "ticket", "webhook": url}]}))
    monkeypatch.setenv("BATCH_INFERENCE_ALERTING_CONFIG", str(config))
    instance, defs = dagster_instance, project_defs(home)
    day, other = landed
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

    _fire(instance, failed.run_id)
    _fire(instance, checked.run_id)
    assert [(m["kind"], m["severity"], m["partitions"]) for m in received] == [
        ("run_failure", "ticket", [day]), ("check_failure", "page", [other])]
    assert "predictions_completeness" in received[1]["title"] and received[1]["runbook"].endswith("F2.md")

    # The same failure again inside the group window: nothing new until the window closes, then one
    # grouped follow-up from the flush sensor.
    _fire(instance, checked.run_id)
    assert len(received) == 2
    time.sleep(2.5)
    alert_flush(dg.build_sensor_context(instance=instance))
    assert len(received) == 3 and received[2]["grouped"] and received[2]["kind"] == "check_failure"


def test_without_configuration_nothing_is_sent(home, dagster_instance, monkeypatch):
    monkeypatch.delenv("BATCH_INFERENCE_ALERTING_CONFIG", raising=False)
    result = alert_flush(dg.build_sensor_context(instance=dagster_instance))
    assert "not configured" in result.skip_message


def test_every_failed_run_is_counted_in_the_metrics(home, landed, dagster_instance, monkeypatch):
    """The success-rate SLO and the storage-error alert need failures pushed, alerting configured or not."""
    import shutil
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
        monkeypatch.delenv("BATCH_INFERENCE_ALERTING_CONFIG", raising=False)
        failed = project_defs(home).resolve_job_def(job("score_day")).execute_in_process(
            partition_key=landed[0], instance=dagster_instance, raise_on_error=False)
        assert not failed.success
        _fire(dagster_instance, failed.run_id)
        metrics = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()  # noqa: S310
        assert any(line.startswith("batch_inference_runs_total") and 'status="failure"' in line
                   and 'pipeline="card_fraud"' in line and line.endswith(" 1") for line in metrics.splitlines())
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)
