"""Pushgateway metrics: pure helpers, and what a real Debian `prometheus-pushgateway` exposes after a push."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from prometheus_client.parser import text_string_to_metric_families

from batch_inference.observability import (
    CpuTimer,
    cpu_utilization,
    flush_pushes,
    freshness_lag_seconds,
    metric_names,
    partition_start_timestamp,
    provenance_completeness,
    push_check_metrics,
    push_detection_time,
    push_metrics,
    push_progress,
    ratio,
    recovery_time_seconds,
)

needs_pushgateway = pytest.mark.skipif(
    not shutil.which("prometheus-pushgateway"),
    reason="Debian's prometheus-pushgateway is installed by .ci/run (apt-get install prometheus-pushgateway)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_pushgateway(log: Path) -> Iterator[str]:
    """A throwaway Pushgateway on loopback, in memory only (Debian's default persists to /var/lib)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "w") as out:
        proc = subprocess.Popen(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}",
                                 "--persistence.file="], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pushgateway did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, 9)


@pytest.fixture
def pushgateway(tmp_path) -> Iterator[str]:
    if not shutil.which("prometheus-pushgateway"):
        pytest.skip("prometheus-pushgateway missing; .ci/run installs it")
    with running_pushgateway(tmp_path / "pushgateway.log") as url:
        yield url


def scrape(url: str) -> dict[str, list]:
    """{sample name: [samples]} of the gateway's /metrics, once every push of this process was sent."""
    assert flush_pushes(timeout_s=30)
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


FULL_VALUES = {
    "rows": 990, "rows_in": 1000, "duration_seconds": 12.5, "rows_per_second": 80.0, "quarantined_rows": 10,
    "resumed_rows": 0, "cost_per_million_rows": 0.35, "scoring_freshness_lag_seconds": 3600,
    "publish_freshness_lag_seconds": 7200, "cpu_utilization_ratio": 0.7, "gpu_utilization_ratio": 0.5,
    "gpu_memory_used_bytes": 2e9, "memory_peak_bytes": 1e9, "memory_limit_bytes": 4e9,
    "provenance_completeness_ratio": 1.0, "drift_max_psi": 0.05, "checks_failed": 0, "model_untrusted": 0,
    "model_version_mismatch": 0, "published_partition_timestamp_seconds": partition_start_timestamp("2026-11-20"),
    "recovery_time_seconds": 5400, "detection_time_seconds": 30, "storage_errors": 1,
}


def push_everything(url: str, pipeline: str = "card_fraud") -> None:
    """Every kind of push the platform makes, with every value set."""
    push_metrics(url, "predictions", FULL_VALUES, device="cuda", pipeline=pipeline,
                 batch_durations_s=[0.02, 0.03, 0.5, 4.0])
    push_metrics(url, "predictions", {"model_untrusted": 1, "storage_errors": 2}, status="failure",
                 device="cuda", pipeline=pipeline)
    push_progress(url, "predictions", 500, 1000, pipeline=pipeline, device="cuda", cpu_utilization_ratio=0.2,
                  gpu_utilization_ratio=0.9)
    push_check_metrics(url, "predictions", {"drift_max_psi": 0.31, "checks_failed": 1, "model_version_mismatch": 0,
                                            "provenance_completeness_ratio": 0.99}, pipeline=pipeline)
    push_detection_time(url, "predictions", 42.0, pipeline=pipeline)
    assert flush_pushes(timeout_s=30)  # sent in the background: delivered before the caller reads the gateway


def test_cpu_utilization():
    assert cpu_utilization(8.0, 10.0, 4) == 0.2
    assert cpu_utilization(50.0, 10.0, 4) == 1.0  # clipped
    assert cpu_utilization(1.0, 0.0, 4) == 0.0 and cpu_utilization(1.0, 1.0, 0) == 0.0
    with CpuTimer(cores=1) as timer:
        end = time.process_time() + 0.05
        while time.process_time() < end:
            pass
    assert timer.cpu_seconds >= 0.05 and 0.3 < timer.utilization <= 1.0


def test_freshness_lag_and_partition_start():
    newest = dt.datetime(2026, 11, 20, 23, 59, tzinfo=dt.UTC)
    assert freshness_lag_seconds(newest, dt.datetime(2026, 11, 21, 2, 0, tzinfo=dt.UTC)) == 7260.0
    assert freshness_lag_seconds(100.0, 160.5) == 60.5
    with pytest.raises(ValueError):
        freshness_lag_seconds(dt.datetime(2026, 11, 20), 0.0)
    assert partition_start_timestamp("2026-11-20") == dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp()
    assert ratio(1, 1000) == 0.001 and ratio(5, 0) == 0.0


def test_recovery_time():
    assert recovery_time_seconds([]) is None
    assert recovery_time_seconds([(10, True), (20, True)]) is None
    assert recovery_time_seconds([(10, False), (20, False)]) is None  # not recovered yet
    # first failure of the streak (10) to the next success (70); out of order on purpose
    assert recovery_time_seconds([(70, True), (10, False), (40, False), (5, True)]) == 60.0
    # the latest recovery wins
    assert recovery_time_seconds([(0, False), (10, True), (100, False), (130, True), (140, False)]) == 30.0
    t0 = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    assert recovery_time_seconds([(t0, False), (t0 + dt.timedelta(hours=2), True)]) == 7200.0


def test_provenance_completeness():
    table = pa.table({"model_version": ["3", "3", None, ""], "input_sha256": ["a", "b", "c", "d"]})
    assert provenance_completeness(table, ["model_version", "input_sha256"]) == 0.5
    assert provenance_completeness(table, ["input_sha256"]) == 1.0
    assert provenance_completeness(table, ["missing"]) == 0.0
    assert provenance_completeness(table.slice(0, 0), ["model_version"]) == 1.0


@pytest.mark.integration
@needs_pushgateway
def test_old_call_still_works_and_labels_stay_low_cardinality(pushgateway):
    push_metrics(pushgateway, "predictions", {"rows": 1234, "rows_per_second": 99.5, "batch_latency_p99_ms": 3.0,
                                              "model_version": 3}, device="cpu")
    samples = scrape(pushgateway)
    (rows,) = samples["batch_inference_rows"]
    assert rows.value == 1234 and rows.labels["asset"] == "predictions" and rows.labels["device"] == "cpu"
    assert "batch_inference_batch_latency_p99_ms" not in samples  # unknown keys are ignored
    allowed = {"pipeline", "asset", "device", "status", "job", "instance", "le"}
    for name, found in samples.items():
        if name.startswith("batch_inference_"):
            for sample in found:
                assert set(sample.labels) <= allowed, (name, sample.labels)


@pytest.mark.integration
@needs_pushgateway
def test_every_metric_reaches_the_gateway_and_counters_count(pushgateway):
    push_everything(pushgateway)
    push_metrics(pushgateway, "predictions", {"rows": 1}, status="failure", device="cuda", pipeline="card_fraud")
    samples = scrape(pushgateway)
    missing = [n for n in metric_names() if n not in samples]
    assert not missing, missing

    def value(name: str, **labels: str) -> float:
        (hit,) = [s for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items())]
        return hit.value

    assert value("batch_inference_runs_total", pipeline="card_fraud", status="success") == 1
    assert value("batch_inference_runs_total", pipeline="card_fraud", status="failure") == 2
    assert value("batch_inference_storage_errors_total", pipeline="card_fraud") == 3
    assert value("batch_inference_batch_duration_seconds_count", pipeline="card_fraud") == 4
    assert value("batch_inference_batch_duration_seconds_bucket", pipeline="card_fraud", le="0.05") == 2
    assert value("batch_inference_drift_max_psi", job="batch_inference_checks") == pytest.approx(0.31)
    assert value("batch_inference_drift_max_psi", job="batch_inference") == pytest.approx(0.05)
    assert value("batch_inference_running", pipeline="card_fraud") == 1
    assert abs(value("batch_inference_last_success_timestamp_seconds", pipeline="card_fraud") - time.time()) < 60
    # the failure push replaced its own group only: the success group's gauges are still there
    assert value("batch_inference_rows", pipeline="card_fraud", status="success") == 990
    assert value("batch_inference_rows", pipeline="card_fraud", status="failure") == 1
    assert all("2026-" not in str(s.labels) for found in samples.values() for s in found)
