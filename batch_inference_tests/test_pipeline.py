"""The asset graph materialized in-process against a real DagsterInstance in a temp dir."""


import dagster as dg

from batch_inference.lake import Lake
from batch_inference.modeling.registry import ModelRegistry
from batch_inference.warehouse import connect
from batch_inference_tests.conftest import project_defs
from batch_inference_tests.invariants import assert_day_scored_once

SMALL_MODEL = {"ops": {"model": {"config": {"epochs": 3, "hidden_sizes": [32, 32]}}}}


def test_two_partitions_end_to_end(home, landed, dagster_instance):
    instance = dagster_instance
    defs = project_defs(home)
    for day in landed:
        assert defs.resolve_job_def("ingest_day").execute_in_process(partition_key=day, instance=instance).success
    train = defs.resolve_job_def("train_model").execute_in_process(instance=instance, run_config=SMALL_MODEL)
    assert train.success
    registry = ModelRegistry(home.mlflow_tracking_uri, home.model_name)
    champion = registry.require_champion()
    for day in landed:
        result = defs.resolve_job_def("score_day").execute_in_process(partition_key=day, instance=instance)
        assert result.success
        assert_day_scored_once(home, day, champion.version)

    event = instance.get_latest_materialization_event(dg.AssetKey("predictions"))
    meta = event.asset_materialization.metadata
    for key in ("rows", "rows_per_second", "duration_seconds", "model_version", "device"):
        assert key in meta, key
    assert meta["rows"].value == 3_000 and meta["model_version"].value == champion.version
    assert meta["device"].value == "cpu" and meta["rows_per_second"].value > 0
    assert instance.get_materialized_partitions(dg.AssetKey("predictions")) == set(landed)

    with connect(home.warehouse_path, read_only=True) as con:
        counts = dict(con.execute(
            "SELECT CAST(date AS VARCHAR), count(*) FROM serving_predictions GROUP BY 1").fetchall())
        assert counts == {d: 3_000 for d in landed}
        assert con.execute("SELECT count(*) FROM predictions").fetchall()[0][0] == 6_000

    # Re-materializing a day replaces it: same rows and scores, never duplicates.
    lake = Lake(home.lake_uri)
    before = lake.read("predictions", landed[0]).select(["record_id", "score"])
    assert defs.resolve_job_def("score_day").execute_in_process(partition_key=landed[0], instance=instance).success
    after = lake.read("predictions", landed[0]).select(["record_id", "score"])
    assert after.equals(before)


def test_predictions_without_a_champion_fail_clearly(home, landed, dagster_instance):
    instance = dagster_instance
    defs = project_defs(home)
    assert defs.resolve_job_def("ingest_day").execute_in_process(partition_key=landed[0], instance=instance).success
    result = defs.resolve_job_def("score_day").execute_in_process(
        partition_key=landed[0], instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "materialize the `model` asset first" in failure.step_failure_data.error.to_string()
    assert not Lake(home.lake_uri).exists("predictions", landed[0])
