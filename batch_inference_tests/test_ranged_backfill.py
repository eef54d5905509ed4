"""Ranged backfill runs: one model load for several partitions, checks and figures per partition, and a
range killed half way that reruns only what was not committed."""

import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from batch_inference.pipelines import write_landing_file
from batch_inference_tests.checks_helpers import latest_check
from batch_inference_tests.conftest import (
    fraud_registry,
    job,
    key,
    pipeline_lake,
    project_defs,
    subprocess_env,
)
from batch_inference_tests.invariants import assert_day_scored_once

pytestmark = pytest.mark.integration  # end to end through Dagster: the full tier (`make test`)

DAYS = ["2026-02-01", "2026-02-02", "2026-02-03"]
ROWS = {"2026-02-01": 2_000, "2026-02-02": 2_500, "2026-02-03": 3_000}
PREDICTION_CHECKS = ("predictions_schema", "predictions_completeness", "predictions_drift",
                     "predictions_model_version")


def _range_tags(days: list[str]) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}


@pytest.fixture
def ingested(home, registry, dagster_instance):
    for day in DAYS:
        write_landing_file(day, ROWS[day], Path(home.landing_uri))
    result = project_defs(home).resolve_job_def(job("ingest_day")).execute_in_process(
        instance=dagster_instance, tags=_range_tags(DAYS))
    assert result.success
    return DAYS


def test_a_ranged_run_records_checks_and_figures_per_partition(home, ingested, dagster_instance):
    instance = dagster_instance
    result = project_defs(home).resolve_job_def(job("score_day")).execute_in_process(
        instance=instance, tags=_range_tags(DAYS))
    assert result.success
    champion = fraud_registry(home).require_champion().version
    for day in DAYS:
        assert_day_scored_once(home, day, champion)
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key("predictions"), asset_partitions=[day]), limit=1).records
        meta = records[0].asset_materialization.metadata
        assert meta["rows"].value == ROWS[day] and meta["model_version"].value == champion  # its own figures
        for name in PREDICTION_CHECKS:
            evaluation = latest_check(instance, "predictions", name, partition=day)
            assert evaluation is not None and evaluation.passed, (day, name)
            assert evaluation.target_materialization_data.storage_id == records[0].storage_id
        for asset, name in (("transactions", "transactions_schema"), ("features", "features_schema")):
            assert latest_check(instance, asset, name, partition=day).passed, (day, name)
        assert pipeline_lake(home).read("serving_predictions", day).num_rows == ROWS[day]


def test_a_range_of_one_partition_as_a_backfill_submits_it_records_its_checks(home, ingested, dagster_instance):
    """A `multi_run(1)` backfill run carries range tags, not `dagster/partition`: checks still per partition."""
    day = DAYS[0]
    result = project_defs(home).resolve_job_def(job("score_day")).execute_in_process(
        instance=dagster_instance, tags=_range_tags([day]))
    assert result.success and pipeline_lake(home).exists("serving_predictions", day)
    for name in PREDICTION_CHECKS:
        evaluation = latest_check(dagster_instance, "predictions", name, partition=day)
        assert evaluation is not None and evaluation.passed and evaluation.partition == day, name


@pytest.mark.integration
def test_a_range_killed_half_way_reruns_only_what_was_not_committed(home, ingested, dagster_instance):
    script = (
        "import dagster as dg\n"
        "from batch_inference.definitions import build_definitions\n"
        "job = build_definitions().resolve_job_def('card_fraud_score_day')\n"
        f"job.execute_in_process(instance=dg.DagsterInstance.get(), tags={_range_tags(DAYS)!r})\n"
    )
    env = subprocess_env(home) | {"BATCH_INFERENCE_CRASH_AT": f"{DAYS[1]}:after-chunk-0"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    lake = pipeline_lake(home)
    assert lake.exists("predictions", DAYS[0]) and not lake.exists("predictions", DAYS[1])
    first_run_rows = lake.read("predictions", DAYS[0]).select(["record_id", "score", "run_id"])

    from batch_inference.slots import release_dead_run_slots

    release_dead_run_slots(dagster_instance)  # what the local sensor does: the dead run is marked failed
    rerun = project_defs(home).resolve_job_def(job("score_day")).execute_in_process(
        instance=dagster_instance, tags=_range_tags(DAYS))
    assert rerun.success
    metadata = {}
    for day in DAYS:
        record = dagster_instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key("predictions"), asset_partitions=[day]), limit=1).records[0]
        metadata[day] = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    assert metadata[DAYS[0]].get("reused_committed_partition") is True  # committed before the kill: kept
    assert metadata[DAYS[1]]["resumed_rows"] == ROWS[DAYS[1]]  # its one chunk was checkpointed: resumed
    assert metadata[DAYS[2]]["resumed_rows"] == 0  # never started: scored
    assert lake.read("predictions", DAYS[0]).select(["record_id", "score", "run_id"]).equals(first_run_rows)
    champion = fraud_registry(home).require_champion().version
    for day in DAYS:  # the lake invariants: landing = scored + quarantined, no duplicate ids
        assert_day_scored_once(home, day, champion)
        for name in PREDICTION_CHECKS:
            assert latest_check(dagster_instance, "predictions", name, partition=day).passed, (day, name)
