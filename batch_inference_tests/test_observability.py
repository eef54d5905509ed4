"""Metadata that plots, progress with ETA, JSON logs, and metrics pushed to a real Pushgateway."""

import json
import logging
import shutil
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
import yaml

from batch_inference.observability import (
    JsonFormatter,
    ProgressReporter,
    cost_per_million_rows,
    flush_pushes,
    push_metrics,
)
from batch_inference_tests.conftest import job, project_defs
from batch_inference_tests.conftest import key as asset_key  # `key` is a loop variable below
from batch_inference_tests.dagster_dev import free_port
from batch_inference_tests.services import _process

REPO = Path(__file__).resolve().parents[1]
NUMERIC = ("rows", "rows_per_second", "duration_seconds", "batch_latency_p50_ms", "batch_latency_p99_ms",
           "quarantined_rows", "resumed_rows", "cost_per_million_rows")


def test_progress_is_reported_at_an_interval_with_eta():
    now = [0.0]
    seen: list[dict] = []
    reporter = ProgressReporter(1_000, seen.append, interval_s=10, clock=lambda: now[0])
    for _ in range(10):  # 10 batches of 50 rows, one second apart
        now[0] += 1
        reporter.advance(50)
    assert len(seen) == 1 and seen[0] == {"rows_done": 500, "rows_total": 1_000, "rows_per_second": 50.0,
                                          "eta_seconds": 10.0}


def test_cost_per_million_rows():
    assert cost_per_million_rows(3600, 1_000_000, 2.5) == 2.5
    assert cost_per_million_rows(10, 0, 2.5) == 0.0


def test_predictions_metadata_and_json_logs(home, landed, registry, tmp_path):
    log_file = tmp_path / "dagster.jsonl"
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    logs = yaml.safe_load((REPO / "deploy/json-logs.yaml").read_text())
    handler = logs["python_logs"]["dagster_handler_config"]["handlers"]["json"]
    handler.update({"class": "logging.FileHandler", "filename": str(log_file)})
    handler.pop("stream")
    (home.dagster_home / "dagster.yaml").write_text(yaml.safe_dump({**config, **logs}))
    defs = project_defs(home)
    with dg.DagsterInstance.get() as instance:
        day = landed[0]
        assert defs.resolve_job_def(job("ingest_day")).execute_in_process(partition_key=day, instance=instance).success
        result = defs.resolve_job_def(job("score_day")).execute_in_process(
            partition_key=day, instance=instance,
            run_config={"resources": {"observability": {"config": {"progress_interval_s": 0.0}}}})
        assert result.success
        meta = instance.get_latest_materialization_event(asset_key("predictions")).asset_materialization.metadata
    for key in NUMERIC:
        assert isinstance(meta[key].value, int | float), key
    assert meta["rows"].value > 0 and meta["rows_per_second"].value > 0
    assert meta["batch_latency_p99_ms"].value >= meta["batch_latency_p50_ms"].value > 0
    assert meta["cost_per_million_rows"].value > 0 and meta["resumed_rows"].value == 0
    assert meta["model_version"].value == registry.require_champion().version and meta["device"].value == "cpu"

    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    ours = [line for line in lines if line.get("stage") == "predictions" and "partition" in line]
    assert ours, lines[-5:]
    assert all(line["run_id"] == result.run_id and line["partition"] == landed[0] for line in ours)
    assert {line["model_version"] for line in ours} == {registry.require_champion().version}
    progress = [line for line in ours if "eta_seconds" in line]
    assert progress and progress[-1]["rows_done"] <= progress[-1]["rows_total"]


def test_json_formatter_without_dagster_metadata():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    record.partition = "2026-01-01"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello world" and line["level"] == "WARNING" and line["partition"] == "2026-01-01"


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("prometheus-pushgateway"), reason="Debian's prometheus-pushgateway "
                    "is installed by .ci/run (apt-get install prometheus-pushgateway)")
def test_metrics_reach_a_real_pushgateway(tmp_path):
    port = free_port()
    args = ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}"]
    with _process(args, tmp_path / "pushgateway.log", f"http://127.0.0.1:{port}/-/ready"):
        push_metrics(f"http://127.0.0.1:{port}", "predictions",
                     {"rows": 1234, "rows_per_second": 99.5, "quarantined_rows": 2, "cost_per_million_rows": 0.01},
                     device="cpu")
        assert flush_pushes(timeout_s=30)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'batch_inference_rows{asset="predictions",device="cpu",instance="",job="batch_inference"' in text \
        or 'batch_inference_rows{asset="predictions",device="cpu",job="batch_inference"' in text
    rows_line = next(line for line in text.splitlines() if line.startswith("batch_inference_rows{"))
    assert rows_line.endswith(" 1234")
    assert "batch_inference_last_run_timestamp_seconds" in text
    assert "2026-" not in text  # no partition keys as labels
