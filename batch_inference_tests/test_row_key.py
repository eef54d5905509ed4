"""`input.key` names the row key everywhere: a pipeline keyed by `payment_id` (not `record_id`)
lands, featurises, trains, scores, checks and publishes a day, and its lake tables carry that key."""

import warnings
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import yaml

from batch_inference.definitions import build_resources
from batch_inference.defs.card_fraud.vocabulary import TRANSACTION_SCHEMA
from batch_inference.lake import Lake
from batch_inference.pipelines import write_landing_file
from batch_inference_tests.checks_helpers import latest_check
from batch_inference_tests.conftest import land_sandbox_labels

CARD_FRAUD = Path(__file__).resolve().parents[1] / "batch_inference" / "defs" / "card_fraud"
KEY = "payment_id"
# The card-fraud landing schema with its key column renamed (the YAML's `input.arrow_schema`).
PAYMENTS_SCHEMA = TRANSACTION_SCHEMA.set(TRANSACTION_SCHEMA.get_field_index("record_id"),
                                         TRANSACTION_SCHEMA.field("record_id").with_name(KEY))
FEATURES = ["log_amount", "is_night", "is_foreign", "card_not_present", "hour_sin", "hour_cos"]


def payments_yaml() -> dict:
    return {"type": "batch_inference.components.BatchScoring", "attributes": {
        "name": "payments",
        "partitions_start": "2025-06-01",
        "input": {"asset": "payments", "arrow_schema": "batch_inference_tests.test_row_key:PAYMENTS_SCHEMA",
                  "key": KEY, "event_time": "event_time"},
        "features": {"sql": "features.sql"},
        "registered_model": {"registered_name": "payment_risk_by_id",
                             "format": "batch_inference.defs.card_fraud.network:RiskMLPFormat",
                             "builder": "batch_inference.defs.card_fraud.training:build_model",
                             "params": {"features": FEATURES, "hidden_sizes": [16], "epochs": 2}},
        "scoring": {"adapter": "batch_inference.plugins.tabular:FloatMatrix",
                    "head": "batch_inference.plugins.heads:Probability"},
        "labels": {"landing_entity": "fraud_labels",  # late labels, shared with card_fraud's landing area
                   "key": "record_id", "arrow_schema": "batch_inference.defs.card_fraud.vocabulary:LABEL_SCHEMA"},
    }}


def test_a_pipeline_keyed_by_another_column_scores_a_checked_day(home, dagster_instance):
    from dagster.components.testing import create_defs_folder_sandbox

    day = "2026-01-05"
    landing = Path(home.landing_uri)
    source = write_landing_file(day, 2_000, landing)  # card-fraud rows, then keyed by payment_id
    table = pq.read_table(source).rename_columns([KEY if n == "record_id" else n for n in PAYMENTS_SCHEMA.names])
    pq.write_table(table, landing / f"payments_{day}.parquet")
    source.unlink()
    with create_defs_folder_sandbox() as sandbox:
        folder = sandbox.defs_folder_path / "payments"
        folder.mkdir()
        (folder / "defs.yaml").write_text(yaml.safe_dump(payments_yaml()))
        (folder / "features.sql").write_text((CARD_FRAUD / "features.sql").read_text().replace("record_id", KEY))
        with sandbox.build_all_defs() as pipelines, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            defs = dg.Definitions.merge(pipelines, dg.Definitions(resources=build_resources(home),
                                                                  executor=dg.in_process_executor))
            land_sandbox_labels(defs, home, dagster_instance, day, "payments_labels_day", 2_000)
            for job in ("payments_ingest_day", "payments_train_model", "payments_score_day"):
                kwargs = {} if job.endswith("train_model") else {"partition_key": day}
                result = defs.resolve_job_def(job).execute_in_process(instance=dagster_instance, **kwargs)
                assert result.success, job
    key = dg.AssetKey(["payments", "predictions"])
    for name in ("predictions_schema", "predictions_completeness", "predictions_drift", "predictions_model_version"):
        evaluation = latest_check(dagster_instance, key, name, partition=day)
        assert evaluation is not None and evaluation.passed, name
    lake = Lake(f"{home.lake_uri}/payments")
    for asset in ("payments", "features", "predictions", "serving_predictions"):
        names = lake.parquet_file(asset, day).schema_arrow.names
        assert KEY in names and "record_id" not in names, (asset, names)
    published = lake.read("serving_predictions", day, [KEY])
    assert published.num_rows == 2_000
    assert sorted(published.column(KEY).to_pylist()) == sorted(table.column(KEY).to_pylist())
