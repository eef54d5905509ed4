"""The card-fraud pipeline materialized in-process against a real DagsterInstance in a temp dir."""

from pathlib import Path

import dagster as dg

from batch_inference import serving
from batch_inference_tests.conftest import (
    fraud_registry,
    job,
    key,
    land_labels,
    pipeline_lake,
    project_defs,
    promote_by_hand,
)
from batch_inference_tests.invariants import assert_day_scored_once

SMALL_MODEL = {"ops": {"card_fraud__model": {"config": {"params": {"epochs": 3, "hidden_sizes": [32, 32]}}}}}


def test_two_partitions_end_to_end(home, landed, dagster_instance):
    instance = dagster_instance
    defs = project_defs(home)
    for day in landed:
        assert defs.resolve_job_def(job("ingest_day")).execute_in_process(partition_key=day, instance=instance).success
    land_labels(home, instance, landed[0], "2026-01-26", 3_000)  # the days' chargebacks, weeks later
    train = defs.resolve_job_def(job("train_model")).execute_in_process(instance=instance, run_config=SMALL_MODEL)
    assert train.success
    champion = fraud_registry(home).require_champion()
    for day in landed:
        result = defs.resolve_job_def(job("score_day")).execute_in_process(partition_key=day, instance=instance)
        assert result.success
        assert_day_scored_once(home, day, champion.version)
        assert {e.check_name for e in result.get_asset_check_evaluations() if e.passed} == {
            "predictions_schema", "predictions_completeness", "predictions_drift", "predictions_model_version"}

    event = instance.get_latest_materialization_event(key("predictions"))
    meta = event.asset_materialization.metadata
    for name in ("rows", "rows_per_second", "duration_seconds", "model_version", "device", "model_artifact_sha256"):
        assert name in meta, name
    assert meta["rows"].value == 3_000 and meta["model_version"].value == champion.version
    assert meta["device"].value == "cpu" and meta["rows_per_second"].value > 0
    assert instance.get_materialized_partitions(key("predictions")) == set(landed)

    con = serving.connect(home.lake_uri)
    try:
        counts = dict(con.execute(
            "SELECT CAST(date AS VARCHAR), count(*) FROM card_fraud.serving_predictions GROUP BY 1").fetchall())
        assert counts == {d: 3_000 for d in landed}
        assert con.execute("SELECT count(*) FROM card_fraud.predictions").fetchall()[0][0] == 6_000
        assert con.execute("SELECT count(DISTINCT run_id) FROM card_fraud.ledger").fetchall()[0][0] == 2
    finally:
        con.close()
    assert "card_fraud.serving_predictions" in home.warehouse_sql.read_text()

    # Re-materializing a day replaces it: same rows and scores, never duplicates.
    lake = pipeline_lake(home)
    before = lake.read("predictions", landed[0]).select(["record_id", "score"])
    assert defs.resolve_job_def(job("score_day")).execute_in_process(partition_key=landed[0], instance=instance).success
    after = lake.read("predictions", landed[0]).select(["record_id", "score"])
    assert after.equals(before)


def test_predictions_without_a_champion_fail_clearly(home, landed, dagster_instance):
    instance = dagster_instance
    defs = project_defs(home)
    assert defs.resolve_job_def(job("ingest_day")).execute_in_process(partition_key=landed[0], instance=instance).success
    result = defs.resolve_job_def(job("score_day")).execute_in_process(
        partition_key=landed[0], instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "materialize the pipeline's `model` asset first" in failure.step_failure_data.error.to_string()
    assert not pipeline_lake(home).exists("predictions", landed[0])


def test_serving_alone_refuses_a_day_whose_blocking_check_failed(home, landed, registry, dagster_instance):
    """The publish gate holds across runs: a later serving-only run re-checks the latest evaluations."""
    import shutil

    from batch_inference.pipelines import write_landing_file

    instance = dagster_instance
    defs = project_defs(home)
    day = landed[0]
    landing = Path(home.landing_uri) / f"transactions_{day}.parquet"
    assert defs.resolve_job_def(job("ingest_day")).execute_in_process(partition_key=day, instance=instance).success
    # The landing file changes after ingest (a late correction): 500 more rows than were scored.
    shutil.copy(landing, landing.with_suffix(".orig"))
    write_landing_file(day, 3_500, Path(home.landing_uri))
    scored = defs.resolve_job_def(job("score_day")).execute_in_process(
        partition_key=day, instance=instance, raise_on_error=False)
    completeness = next(e for e in scored.get_asset_check_evaluations() if e.check_name == "predictions_completeness")
    assert not completeness.passed and completeness.severity == dg.AssetCheckSeverity.ERROR
    assert not pipeline_lake(home).exists("serving_predictions", day)  # blocked inside the run

    publish = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=day, instance=instance, asset_selection=[key("serving_predictions")], raise_on_error=False)
    assert not publish.success
    failure = next(e for e in publish.all_events if e.is_step_failure)
    assert "predictions_completeness: failed" in failure.step_failure_data.error.to_string()
    assert not pipeline_lake(home).exists("serving_predictions", day)

    # The original file back and the day re-scored with its checks: the publish goes through.
    shutil.copy(landing.with_suffix(".orig"), landing)
    assert defs.resolve_job_def(job("score_day")).execute_in_process(partition_key=day, instance=instance).success
    assert pipeline_lake(home).exists("serving_predictions", day)


def test_a_corrupt_champion_fails_at_once_without_retries(home, landed, trained_small, dagster_instance, tmp_path):
    """Digests match but the weights do not parse: a permanent error, the step is not retried."""
    from batch_inference.defs.card_fraud.network import WEIGHTS_FILE
    from batch_inference_tests.conftest import artifact_of

    registry = fraud_registry(home)
    artifact = artifact_of(trained_small, tmp_path / "artifact")
    (artifact.directory / WEIGHTS_FILE).write_bytes(b"\x00" * 64)
    promote_by_hand(registry, registry.register(artifact).version)
    defs = project_defs(home)
    day = landed[0]
    assert defs.resolve_job_def(job("ingest_day")).execute_in_process(partition_key=day,
                                                                      instance=dagster_instance).success
    result = defs.resolve_job_def(job("score_day")).execute_in_process(
        partition_key=day, instance=dagster_instance, raise_on_error=False)
    assert not result.success
    events = result.all_events
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in events)
    failure = next(e for e in events if e.is_step_failure)
    assert "CorruptArtifactError" in failure.step_failure_data.error.to_string()
    assert "runbooks/F4.md" in failure.step_failure_data.error.to_string()
