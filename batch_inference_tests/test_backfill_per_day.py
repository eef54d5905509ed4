"""A backfill where every day stands alone, through a real `dagster dev` and the UI's GraphQL: a bad
landing file and a drifted day inside a range fail only themselves, the other days are checked and
published in the first pass, the backfill's partition status says exactly that, and "re-execute
failed" reruns only the failed days; a range killed half way reruns only what was unfinished."""

import time
from pathlib import Path

import dagster as dg
import pytest

from batch_inference.components.partition_scope import failed_partitions_of_run, partitions_of_run
from batch_inference.dagster_compat import BACKFILL_COMPLETED_FAILED, BACKFILL_REQUESTED, backfill_status
from batch_inference.devserver import LAUNCH_BACKFILL
from batch_inference.pipelines import write_landing_file
from batch_inference.slots import release_dead_run_slots
from batch_inference_tests.checks_helpers import latest_check
from batch_inference_tests.conftest import key, pipeline_lake, project_defs, subprocess_env
from batch_inference_tests.dagster_dev import dagster_dev, graphql, wait_for

pytestmark = pytest.mark.integration

ASSETS = ("transactions", "features", "predictions", "serving_predictions")
ROWS = 2_000
REEXECUTE = """
mutation($params: ReexecutionParams!) {
  reexecutePartitionBackfill(reexecutionParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status
      assetBackfillData { assetBackfillStatuses { __typename ... on AssetPartitionsStatusCounts {
        assetKey { path } numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized
        numPartitionsFailed } } }
    }
  }
}"""


def _recent_days(settings, n: int) -> list[str]:
    return project_defs(settings).resolve_assets_def(key("predictions")).partitions_def.get_partition_keys()[-n:]


def _launch(port: int, days: list[str]) -> str:
    params = {"partitionNames": days, "assetSelection": [{"path": list(key(a).path)} for a in ASSETS]}
    answer = graphql(port, LAUNCH_BACKFILL, {"params": params})["data"]["launchPartitionBackfill"]
    assert answer["__typename"] == "LaunchBackfillSuccess", answer
    return answer["backfillId"]


def _reexecute_failed(port: int, backfill_id: str) -> str:
    params = {"parentRunId": backfill_id, "strategy": "FROM_FAILURE"}
    answer = graphql(port, REEXECUTE, {"params": params})["data"]["reexecutePartitionBackfill"]
    assert answer["__typename"] == "LaunchBackfillSuccess", answer
    return answer["backfillId"]


def _finished(instance, backfill_id: str, timeout: float = 1_200) -> str:
    return wait_for(lambda: backfill_status(instance, backfill_id) != BACKFILL_REQUESTED
                    and backfill_status(instance, backfill_id), timeout, "the backfill", interval=5)


def _status_counts(port: int, backfill_id: str) -> dict[str, tuple[int, int, int, int]]:
    """Per asset (targeted, in progress, materialized, failed), as the backfill page shows them."""
    data = graphql(port, STATUS, {"id": backfill_id})["data"]["partitionBackfillOrError"]
    return {s["assetKey"]["path"][-1]: (s["numPartitionsTargeted"], s["numPartitionsInProgress"],
                                        s["numPartitionsMaterialized"], s["numPartitionsFailed"])
            for s in data["assetBackfillData"]["assetBackfillStatuses"]}


def _materialized(instance, asset: str, days: list[str]) -> set[str]:
    return set(days) & instance.get_materialized_partitions(key(asset))


def _runs(instance, backfill_id: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id})))


def test_a_bad_file_and_a_drifted_day_fail_alone_and_the_rest_is_published(home, registry, tmp_path):
    days = _recent_days(home, 6)
    bad_file, drifted = days[1], days[3]
    landing = Path(home.landing_uri)
    paths = {day: write_landing_file(day, ROWS, landing, drift=1.0 if day == drifted else 0.0) for day in days}
    paths[bad_file].write_bytes(paths[bad_file].read_bytes()[: paths[bad_file].stat().st_size // 2])  # truncated
    good = [d for d in days if d not in (bad_file, drifted)]
    env = {**subprocess_env(home), "BATCH_INFERENCE_SENSORS": "stopped"}
    with dagster_dev(env, home.dagster_home, tmp_path / "dev.log") as port:
        backfill_id = _launch(port, days)
        with dg.DagsterInstance.get() as instance:
            assert _finished(instance, backfill_id) == BACKFILL_COMPLETED_FAILED
            # The first pass: everything but the two bad days is published.
            assert _materialized(instance, "serving_predictions", days) == set(good)
            assert _materialized(instance, "predictions", days) == set(days) - {bad_file}  # drifted: scored
            assert _materialized(instance, "features", days) == set(days) - {bad_file}
            assert _materialized(instance, "transactions", days) == set(days) - {bad_file}
            # The backfill page: exactly those days failed, nothing left in progress.
            assert _status_counts(port, backfill_id) == {
                "transactions": (6, 0, 5, 1), "features": (6, 0, 5, 1), "predictions": (6, 0, 5, 1),
                "serving_predictions": (6, 0, 4, 2)}
            # Every committed day has its check records, aimed at its own materialization, with its figures.
            for day in set(days) - {bad_file}:
                mat = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key("predictions"), asset_partitions=[day]), limit=1).records[0]
                assert mat.asset_materialization.metadata["rows_in"].value == ROWS, day
                for name in ("predictions_schema", "predictions_completeness", "predictions_drift",
                             "predictions_model_version"):
                    evaluation = latest_check(instance, "predictions", name, partition=day)
                    assert evaluation.target_materialization_data.storage_id == mat.storage_id, (day, name)
                    assert evaluation.passed == (day != drifted or name != "predictions_drift"), (day, name)
                assert latest_check(instance, "transactions", "transactions_schema", partition=day).passed, day
                assert latest_check(instance, "features", "features_schema", partition=day).passed, day
            # The failed runs name their failed days (what the alerts report) and the right runbooks.
            failed_runs = [r for r in _runs(instance, backfill_id) if r.status == dg.DagsterRunStatus.FAILURE]
            named = {d for r in failed_runs for d in failed_partitions_of_run(instance, r)}
            assert named == {bad_file, drifted}
            failures = " ".join(e.dagster_event.step_failure_data.error.to_string() for r in failed_runs
                                for e in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.STEP_FAILURE))
            assert "docs/runbooks/F2.md" in failures and "docs/runbooks/F5.md" in failures

            # Fix the file; "re-execute failed" reruns those two days only.
            write_landing_file(bad_file, ROWS, landing)
            retry_id = _reexecute_failed(port, backfill_id)
            _finished(instance, retry_id)
            covered = {d for r in _runs(instance, retry_id) for d in partitions_of_run(r)}
            assert covered == {bad_file, drifted}
            assert _materialized(instance, "serving_predictions", days) == set(good) | {bad_file}
            assert _status_counts(port, retry_id)["serving_predictions"] == (2, 0, 1, 1)  # the drift still holds


def test_a_range_killed_half_way_reexecutes_only_what_was_unfinished(home, registry, tmp_path):
    days = _recent_days(home, 4)
    for day in days:
        write_landing_file(day, ROWS, Path(home.landing_uri))
    env = {**subprocess_env(home), "BATCH_INFERENCE_SENSORS": "stopped"}
    with dagster_dev({**env, "BATCH_INFERENCE_CRASH_AT": f"{days[2]}:after-chunk-0"}, home.dagster_home,
                     tmp_path / "dev1.log") as port:
        backfill_id = _launch(port, days)
        with dg.DagsterInstance.get() as instance:
            def killed_run() -> list[str]:  # marked failed by us, or already by the code location's sensor
                return release_dead_run_slots(instance) or [
                    r.run_id for r in _runs(instance, backfill_id) if r.status == dg.DagsterRunStatus.FAILURE]

            killed = wait_for(killed_run, 900, "the ranged run to be killed")
    lake = pipeline_lake(home)
    assert lake.exists("predictions", days[1]) and not lake.exists("predictions", days[2])
    with dagster_dev(env, home.dagster_home, tmp_path / "dev2.log") as port, dg.DagsterInstance.get() as instance:
        assert _finished(instance, backfill_id) == BACKFILL_COMPLETED_FAILED
        started = time.time()
        retry_id = _reexecute_failed(port, backfill_id)
        _finished(instance, retry_id)
        runs = _runs(instance, retry_id)
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [r.status for r in runs]
        assert _materialized(instance, "serving_predictions", days) == set(days)
        rerun_assets = {k.path[-1] for r in runs for k in r.asset_selection or ()}
        assert rerun_assets == {"predictions", "serving_predictions"}, rerun_assets  # ingest and features were done
        figures = {}
        for day in days:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key("predictions"), asset_partitions=[day]), limit=1).records
            assert records[0].timestamp >= started and records[0].run_id != killed[0], day
            figures[day] = {k: v.value for k, v in records[0].asset_materialization.metadata.items()}
        # Committed before the kill: kept, not rescored; the killed day resumed; the last one scored.
        assert figures[days[0]].get("reused_committed_partition") and figures[days[1]].get("reused_committed_partition")
        assert figures[days[2]]["resumed_rows"] > 0 and figures[days[3]]["resumed_rows"] == 0
