"""The store-demand example: an upstream-fed regression pipeline, through Dagster on a real instance.

Its input is a Dagster asset (`store_demand/store_sales_raw`), not landing files: the tests
materialize that upstream as its owner would, or write a bad day of it into the lake directly.
"""

import datetime as dt
import json
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from batch_inference import serving
from batch_inference.components.checks import distribution_drift
from batch_inference.defs.store_demand.network import DemandMLPFormat
from batch_inference.defs.store_demand.sales import generate_sales
from batch_inference.defs.store_demand.training import build_model, predict
from batch_inference.features import run_feature_sql
from batch_inference.lake import Lake, lake_of_key
from batch_inference.modeling.artifact import REFERENCE_FILE
from batch_inference.pipelines import discover
from batch_inference.plugins.protocols import TrainingRequest
from batch_inference.plugins.tabular import feature_matrix
from batch_inference.quality.drift import OK
from batch_inference_tests.conftest import project_defs

PIPELINE = "store_demand"
UPSTREAM = dg.AssetKey([PIPELINE, "store_sales_raw"])
DAYS = ("2026-01-08", "2026-01-09", "2026-01-10")  # Thursday to Saturday
ROWS = 2_400  # 60 stores x 40 items: enough for the model to learn the levels, not just the weekday
UPSTREAM_ROWS = {"ops": {"store_demand__store_sales_raw": {"config": {"rows": ROWS}}}}
SMALL_MODEL = {"ops": {"store_demand__model": {"config": {"params": {"epochs": 8}}}}}  # the default: fit, not squashed
FEATURES_SQL = (Path(__file__).resolve().parents[1] / "batch_inference/defs/store_demand/features.sql").read_text()


def key(asset: str) -> dg.AssetKey:
    return dg.AssetKey([PIPELINE, asset])


def job(defs: dg.Definitions, name: str):
    return defs.resolve_job_def(f"{PIPELINE}_{name}")


def materialize_upstream(defs: dg.Definitions, instance, day: str) -> None:
    """The upstream's owner materializes a day (the asset writes it into the lake)."""
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=day, instance=instance, asset_selection=[UPSTREAM], run_config=UPSTREAM_ROWS)
    assert result.success


def passed_checks(result) -> set[str]:
    return {e.check_name for e in result.get_asset_check_evaluations() if e.passed}


def test_a_day_is_scored_checked_and_published_through_dagster(home, dagster_instance):
    defs = project_defs(home)
    for day in DAYS:
        materialize_upstream(defs, dagster_instance, day)
        ingest = job(defs, "ingest_day").execute_in_process(partition_key=day, instance=dagster_instance)
        assert ingest.success
        assert passed_checks(ingest) == {"sales_schema", "features_schema"}  # the input gets its schema check
    assert job(defs, "train_model").execute_in_process(instance=dagster_instance, run_config=SMALL_MODEL).success

    day = DAYS[-1]
    result = job(defs, "score_day").execute_in_process(partition_key=day, instance=dagster_instance)
    assert result.success
    assert passed_checks(result) == {"predictions_schema", "predictions_completeness", "predictions_drift",
                                     "predictions_model_version"}
    completeness = next(e for e in result.get_asset_check_evaluations()
                        if e.check_name == "predictions_completeness").metadata
    assert completeness["landing_rows"].value == ROWS and completeness["scored_rows"].value == ROWS

    lake = Lake(f"{home.lake_uri}/{PIPELINE}")
    predictions = lake.read("predictions", day)
    assert predictions.schema.field("prediction").type == pa.float32()
    assert pc.min(predictions.column("prediction")).as_py() >= 0.0  # the head's min_value
    input_meta = dagster_instance.get_latest_materialization_event(key("sales")).asset_materialization.metadata
    assert input_meta["upstream_asset"].value == "store_demand/store_sales_raw"
    assert input_meta["upstream_rows"].value == ROWS and input_meta["quarantined_rows"].value == 0

    con = serving.connect(home.lake_uri)
    try:
        published = con.execute("SELECT count(*), min(prediction) >= 0 FROM store_demand.serving_predictions "
                                "WHERE CAST(date AS VARCHAR) = ?", [day]).fetchall()
    finally:
        con.close()
    assert published == [(ROWS, True)]


def test_a_model_trained_on_one_day_forecasts_other_weekdays_finitely():
    """One day in the window: the weekday features are constant there, and must not blow up later."""
    with tempfile.TemporaryDirectory() as tmp:
        one_day = run_feature_sql(FEATURES_SQL, generate_sales(DAYS[0], 400))
        artifact = build_model(TrainingRequest(one_day, [DAYS[0]], {"epochs": 1}, Path(tmp)))
        loaded = DemandMLPFormat().load(artifact.directory, {p.name: "" for p in artifact.directory.iterdir()})
        other = run_feature_sql(FEATURES_SQL, generate_sales(DAYS[-1], 400))
        forecast = predict(loaded.module, np.ascontiguousarray(feature_matrix(other, tuple(loaded.config["features"]))))
    assert np.isfinite(forecast).all() and forecast.max() < 1_000


def test_bad_upstream_rows_are_quarantined_with_a_reason(home, dagster_instance):
    defs = project_defs(home)
    day = DAYS[0]
    rows = generate_sales(day, 400).to_pylist()
    rows[0]["price"] = -1.0
    rows[1]["record_id"] = rows[2]["record_id"]
    rows[3]["sale_date"] = rows[3]["sale_date"] - dt.timedelta(days=1)
    rows[4]["units_lag_7"] = -3.0
    table = pa.Table.from_pylist(rows, schema=generate_sales(day, 40).schema)
    upstream, asset = lake_of_key(home.lake_uri, UPSTREAM.path)
    upstream.write(asset, day, table)  # the upstream's owner writes a bad day (outside this pipeline)

    assert job(defs, "ingest_day").execute_in_process(partition_key=day, instance=dagster_instance).success
    lake = Lake(f"{home.lake_uri}/{PIPELINE}")
    assert lake.read("sales", day).num_rows == 396
    quarantined = lake.read("quarantine", day, part="part-sales.parquet").to_pylist()
    reasons = {q["record_id"]: q["reason"] for q in quarantined}
    assert len(quarantined) == 4 and {q["stage"] for q in quarantined} == {"sales"}
    assert reasons[rows[0]["record_id"]].startswith("price: greater_than(0)")
    assert reasons[rows[1]["record_id"]] == "duplicate record_id"
    assert "sale_date" in reasons[rows[3]["record_id"]] and day in reasons[rows[3]["record_id"]]
    assert reasons[rows[4]["record_id"]].startswith("units_lag_7: greater_than_or_equal_to(0)")
    assert json.loads(quarantined[0]["original"])["price"] in (-1.0, rows[1]["price"], rows[3]["price"],
                                                               rows[4]["price"])


def test_an_upstream_day_missing_a_column_fails_naming_the_file_and_column(home, dagster_instance):
    defs = project_defs(home)
    day = DAYS[0]
    upstream, asset = lake_of_key(home.lake_uri, UPSTREAM.path)
    upstream.write(asset, day, generate_sales(day, 40).drop_columns(["price"]))
    with pytest.raises(Exception, match=r"store_sales_raw/date=2026-01-08/part-0.parquet is missing required "
                                        r"column\(s\) price"):
        job(defs, "ingest_day").execute_in_process(partition_key=day, instance=dagster_instance)
    assert not Lake(f"{home.lake_uri}/{PIPELINE}").exists("sales", day)


def test_the_upstream_materializing_starts_the_pipeline_by_declarative_automation(home, dagster_instance):
    defs = project_defs(home)
    daily = [key(a) for a in ("sales", "features", "predictions", "serving_predictions")]
    latest = defs.resolve_assets_def(key("sales")).partitions_def.get_last_partition_key()
    first = dg.evaluate_automation_conditions(defs=defs, instance=dagster_instance)
    assert first.total_requested == 0  # nothing upstream yet: nothing to run

    materialize_upstream(defs, dagster_instance, latest)
    second = dg.evaluate_automation_conditions(defs=defs, instance=dagster_instance, cursor=first.cursor)
    assert {k: second.get_requested_partitions(k) for k in daily} == {k: {latest} for k in daily}
    assert second.get_requested_partitions(key("model")) == set()  # models are built on purpose
    checks = {r.key.name for r in second.results if isinstance(r.key, dg.AssetCheckKey) and r.true_subset.size}
    assert checks >= {"predictions_schema", "predictions_completeness", "predictions_drift",
                      "predictions_model_version"}  # in the same tick, so in the same run as the predictions
    sensor = defs.resolve_sensor_def(f"{PIPELINE}_automation_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_four_clean_weeks_raise_no_drift_warning():
    """Train on four weeks, then check the next four, day by day, with the pipeline's own drift check:
    the seasonal features (the same for every row of a day) must not cry wolf."""
    start = dt.date(2026, 1, 5)
    days = [(start + dt.timedelta(days=i)).isoformat() for i in range(56)]
    features = {d: run_feature_sql(FEATURES_SQL, generate_sales(d, 2_400)) for d in days}
    pipeline = discover()[PIPELINE]
    statuses = {}
    with tempfile.TemporaryDirectory() as tmp:
        artifact = build_model(TrainingRequest(pa.concat_tables(features[d] for d in days[:28]), days[:28],
                                               {"epochs": 4}, Path(tmp)))
        loaded = DemandMLPFormat().load(artifact.directory, {p.name: "" for p in artifact.directory.iterdir()})
        reference = json.loads((artifact.directory / REFERENCE_FILE).read_text())
        lake = Lake(f"{tmp}/lake")
        columns = tuple(loaded.config["features"])
        for day in days[28:]:
            table = features[day]
            forecast = predict(loaded.module, np.ascontiguousarray(feature_matrix(table, columns)))
            lake.write("features", day, table)
            lake.write("predictions", day, pa.table({"record_id": table.column("record_id"),
                                                     "prediction": pa.array(forecast, pa.float32())}))
            statuses[day] = distribution_drift(pipeline, reference, lake, day, pipeline.spec.quality.thresholds,
                                               pipeline.spec.quality.drift_features)
    assert {d: s for d, (s, _) in statuses.items() if s != OK} == {}
    calendar = {"dow_sin", "dow_cos", "is_weekend"}
    settings = pipeline.spec.quality.features
    assert all(settings[n].categorical for n in calendar)
    assert settings["log_same_weekday_mean_4w"].reference == "same_weekday"
    for _, meta in statuses.values():  # the seasonal features were checked, not left out
        checked = meta["drift_table"].value
        assert all(f"| {n} |" in checked for n in calendar | {"log_same_weekday_mean_4w", "prediction"}), checked


def _spec(**input_fields):
    from batch_inference.components.batch_scoring import BatchScoring

    attributes = {**discover()[PIPELINE].spec.model_dump(), "input": input_fields}
    return BatchScoring.model_validate(attributes)


def test_the_input_spec_says_what_is_wrong_with_an_upstream_or_landing_input(tmp_path):
    from pydantic import ValidationError

    from batch_inference.components.pipeline import Pipeline

    with pytest.raises(ValidationError, match="set `upstream_asset` or `landing_entity`, not both"):
        _spec(asset="sales", upstream_asset="a/b", landing_entity="sales")
    with pytest.raises(ValidationError, match="input.arrow_schema is required for landing files"):
        _spec(asset="sales")
    spec = _spec(asset="sales", upstream_asset="feeds/daily/sales_raw")  # no arrow_schema: rows taken as typed
    assert spec.input.landing_entity is None and Pipeline(spec, tmp_path).arrow_schema is None
    store, asset = lake_of_key("/lake", Pipeline(spec, tmp_path).upstream_key.path)
    assert (store.uri, asset) == ("/lake/feeds/daily", "sales_raw")  # every key part is used
    with pytest.raises(ValueError, match=r"input.upstream_asset 'sales_raw' needs at least two key parts"):
        Pipeline(_spec(asset="sales", upstream_asset="sales_raw"), tmp_path)


@pytest.mark.integration
def test_a_real_daemon_runs_and_publishes_the_day_the_upstream_materializes(home, dagster_instance, tmp_path):
    """`dagster dev` (webserver + daemon): the upstream's owner materializes today's partition from the
    CLI; nobody starts the pipeline, the automation sensor does, and the day is scored and published."""
    import subprocess
    import sys

    from batch_inference_tests.conftest import subprocess_env
    from batch_inference_tests.dagster_dev import dagster_dev, wait_for

    defs = project_defs(home)
    days = defs.resolve_assets_def(key("sales")).partitions_def.get_partition_keys()[-8:]
    history, latest = days[:-1], days[-1]
    for day in history:  # a model first, from a week before (automation acts on the latest day only)
        materialize_upstream(defs, dagster_instance, day)
        assert job(defs, "ingest_day").execute_in_process(partition_key=day, instance=dagster_instance).success
    assert job(defs, "train_model").execute_in_process(instance=dagster_instance, run_config=SMALL_MODEL).success
    env = subprocess_env(home)
    with dagster_dev(env, home.dagster_home, tmp_path / "dev.log"):
        command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
                   "batch_inference.definitions", "--select", UPSTREAM.to_user_string(), "--partition", latest]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        wait_for(lambda: latest in dagster_instance.get_materialized_partitions(key("serving_predictions")), 420,
                 "the automation sensor's run of the new upstream day")
    runs = dagster_instance.get_runs(dg.RunsFilter(tags={"dagster/partition": latest}))
    automated = [r for r in runs if r.tags.get("dagster/from_automation_condition") == "true"]
    assert automated and all(r.status == dg.DagsterRunStatus.SUCCESS for r in automated)
    assert {r.tags.get("dagster/sensor_name") for r in automated} == {f"{PIPELINE}_automation_sensor"}
    assert {k.to_user_string() for r in automated for k in r.asset_selection or ()} >= {
        "store_demand/sales", "store_demand/features", "store_demand/predictions", "store_demand/serving_predictions"}
