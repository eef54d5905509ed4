"""A real `dagster dev` (webserver + daemon) reacting to new data, a model promotion and a backfill."""

import time
from pathlib import Path

import dagster as dg
import pytest

from batch_inference.dagster_compat import BACKFILL_COMPLETED_SUCCESS, BACKFILL_REQUESTED, backfill_status
from batch_inference.devserver import LAUNCH_BACKFILL as LAUNCH  # the UI's mutation
from batch_inference.lake import Lake
from batch_inference.pipelines import write_landing_file
from batch_inference.rescoring import versions_in_partition
from batch_inference_tests.checks_helpers import latest_check
from batch_inference_tests.conftest import (
    artifact_of,
    key,
    pipeline_lake,
    project_defs,
    promote_by_hand,
    subprocess_env,
)
from batch_inference_tests.dagster_dev import dagster_dev, graphql, wait_for

pytestmark = pytest.mark.integration


def _versions(lake: Lake, day: str) -> set[str]:
    return versions_in_partition(lake, "predictions", day) if lake.exists("predictions", day) else set()


def _recent_days(settings, n: int) -> list[str]:
    return project_defs(settings).resolve_assets_def(key("predictions")).partitions_def.get_partition_keys()[-n:]


def test_new_file_is_scored_and_promotion_rescores(home, registry, trained_small, tmp_path):
    days = _recent_days(home, 2)
    lake = pipeline_lake(home)
    v1 = registry.require_champion().version
    with dagster_dev(subprocess_env(home), home.dagster_home, tmp_path / "dev.log"):
        for day in days:  # files land; nobody clicks anything
            write_landing_file(day, 1_500, Path(home.landing_uri))
        wait_for(lambda: all(_versions(lake, d) == {v1} for d in days), 240, "the landing sensor's runs")
        with dg.DagsterInstance.get() as instance:
            wait_for(lambda: instance.get_materialized_partitions(key("serving_predictions")) == set(days),
                     60, "publication")

        v2 = registry.register(artifact_of(trained_small, tmp_path / "v2")).version  # promote a new version
        promote_by_hand(registry, v2)
        wait_for(lambda: all(_versions(lake, d) == {v2} for d in days), 300, "re-scoring with the new champion")
        with dg.DagsterInstance.get() as instance:
            def finished_champion_runs():
                runs = instance.get_runs(filters=dg.RunsFilter(tags={"batch_inference/trigger": "champion"}))
                return runs if len(runs) == 2 and all(r.is_finished for r in runs) else None

            runs = wait_for(finished_champion_runs, 120, "the re-scoring runs to finish")
            assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [r.status for r in runs]
            assert sum("batch_inference/canary" in r.tags for r in runs) == 1





def test_ranged_backfill_of_60_days_from_the_ui_api(home, registry, tmp_path):
    """Launched as the UI does; ranged runs of 30 days, each day with its own check records and figures."""
    days = _recent_days(home, 60)
    for day in days:
        write_landing_file(day, 300, Path(home.landing_uri))
    env = {**subprocess_env(home), "BATCH_INFERENCE_SENSORS": "stopped"}  # only the backfill runs
    with dagster_dev(env, home.dagster_home, tmp_path / "dev.log") as port:
        started = time.monotonic()
        params = {"partitionNames": days, "assetSelection": [
            {"path": list(key(a).path)} for a in ("transactions", "features", "predictions", "serving_predictions")]}
        answer = graphql(port, LAUNCH, {"params": params})["data"]["launchPartitionBackfill"]
        assert answer["__typename"] == "LaunchBackfillSuccess", answer
        with dg.DagsterInstance.get() as instance:
            backfill_id = answer["backfillId"]
            status = wait_for(lambda: backfill_status(instance, backfill_id) != BACKFILL_REQUESTED
                              and backfill_status(instance, backfill_id), 1_200, "the backfill", interval=5)
            wall = time.monotonic() - started
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            assert status == BACKFILL_COMPLETED_SUCCESS, status
            assert instance.get_materialized_partitions(key("serving_predictions")) == set(days)
            print(f"\nbackfill of {len(days)} days: {len(runs)} runs, {wall:.0f} s wall time")
            assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
            # The input in one run of its own (a bad file fails only its day), then multi_run(30): one
            # model load per 30 days.
            assert len(runs) == 3
            checks = {"transactions": ["transactions_schema"], "features": ["features_schema"],
                      "predictions": ["predictions_schema", "predictions_completeness", "predictions_drift",
                                      "predictions_model_version"]}
            for day in days:
                for asset, names in checks.items():
                    mat = instance.fetch_materializations(
                        dg.AssetRecordsFilter(asset_key=key(asset), asset_partitions=[day]), limit=1).records[0]
                    for name in names:  # one record per partition and check, aimed at that day's materialization
                        evaluation = latest_check(instance, asset, name, partition=day)
                        assert evaluation is not None and evaluation.passed, (day, name)
                        assert evaluation.target_materialization_data.storage_id == mat.storage_id, (day, name)
                    if asset == "predictions":  # and its own figures
                        meta = mat.asset_materialization.metadata
                        assert meta["rows"].value + meta["quarantined_rows"].value == 300, day
                        assert meta["rows_per_second"].value > 0 and "model_version" in meta
