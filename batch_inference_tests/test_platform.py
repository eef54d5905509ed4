"""The platform as Dagster sees it: the definitions snapshot, `dg check defs`, and a second pipeline
declared in YAML only in a sandbox defs folder."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import dagster as dg
import pytest
import yaml

from batch_inference.definitions import build_definitions, build_resources
from batch_inference.pipelines import write_landing_file
from batch_inference_tests.conftest import land_sandbox_labels

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
CARD_FRAUD = Path(__file__).resolve().parents[1] / "batch_inference" / "defs" / "card_fraud"


def definitions_snapshot(defs: dg.Definitions) -> dict:
    """Every asset key, check, job, sensor, schedule, partitions definition and pool, sorted."""
    repo = defs.get_repository_def()
    assets, checks, pools, partitions, policies = [], [], set(), {}, {}
    for ad in repo.assets_defs_by_key.values():
        for key in ad.keys:
            assets.append(key.to_user_string())
            if ad.partitions_def is not None:
                partitions[key.to_user_string()] = str(ad.partitions_def)
            checks.extend(f"{k.asset_key.to_user_string()}:{k.name}" for k in ad.check_keys)  # run by the asset
            if ad.backfill_policy is not None:
                policies[key.to_user_string()] = str(ad.backfill_policy.max_partitions_per_run)
        pools.update(p for p in (getattr(node, "pool", None) for node in ad.node_def.iterate_op_defs()) if p)
    for ad in repo.asset_checks_defs_by_key.values():
        checks.extend(f"{k.asset_key.to_user_string()}:{k.name}" for k in ad.check_keys)
    return {
        "assets": sorted(set(assets)), "checks": sorted(set(checks)),
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "sensors": sorted(s.name for s in repo.sensor_defs), "schedules": sorted(s.name for s in repo.schedule_defs),
        "partitions": dict(sorted(partitions.items())), "pools": sorted(pools),
        "max_partitions_per_run": dict(sorted(policies.items())),
    }


def test_definitions_snapshot(home):
    """Any change to the asset graph, checks, jobs, sensors, partitions or pools shows in review.

    Regenerate with `UPDATE_SNAPSHOT=1 pytest batch_inference_tests/test_platform.py`.
    """
    import os

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = definitions_snapshot(build_definitions(home, "local"))
    if os.environ.get("UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(snap, indent=2) + "\n")
    assert snap == json.loads(SNAPSHOT.read_text())


@pytest.mark.integration
def test_dg_check_defs_validates_every_instance():
    bin_dir = Path(sys.executable).parent
    proc = subprocess.run([str(bin_dir / "dg"), "check", "defs"], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr


def second_pipeline_yaml(model_name: str = "payment_risk") -> dict:
    """Another pipeline in YAML only: its own landing pattern, feature list and registered model."""
    features = ["log_amount", "is_night", "is_foreign", "card_not_present", "hour_sin", "hour_cos"]
    return {"type": "batch_inference.components.BatchScoring", "attributes": {
        "name": "payments",
        "description": "Payment risk on a subset of the card features",
        "partitions_start": "2025-06-01",
        "input": {"asset": "payments", "landing_entity": "payments",
                  "arrow_schema": "batch_inference.defs.card_fraud.vocabulary:TRANSACTION_SCHEMA",
                  "rules": "batch_inference.defs.card_fraud.schemas:TransactionsSchema", "key": "record_id",
                  "event_time": "event_time"},
        "features": {"sql": str(CARD_FRAUD / "features.sql")},
        "registered_model": {"registered_name": model_name, "format": "batch_inference.defs.card_fraud.network:RiskMLPFormat",
                  "builder": "batch_inference.defs.card_fraud.training:build_model",
                  "params": {"features": features, "hidden_sizes": [16], "epochs": 2}},
        "scoring": {"adapter": "batch_inference.plugins.tabular:FloatMatrix",
                    "head": "batch_inference.plugins.heads:Probability",
                    "pandera_schema": "batch_inference.defs.card_fraud.schemas:PredictionsSchema"},
        "automation": {"rescore_window_days": 7},
        "labels": {"landing_entity": "fraud_labels",  # late labels, shared with card_fraud's landing area
                   "arrow_schema": "batch_inference.defs.card_fraud.vocabulary:LABEL_SCHEMA"},
    }}


def test_a_second_pipeline_from_yaml_only_scores_a_checked_partition(home, dagster_instance):
    from dagster.components.testing import create_defs_folder_sandbox

    day = "2026-01-05"
    with create_defs_folder_sandbox() as sandbox:
        folder = sandbox.defs_folder_path / "payments"
        folder.mkdir()
        (folder / "defs.yaml").write_text(yaml.safe_dump(second_pipeline_yaml()))
        with sandbox.build_all_defs() as pipelines, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            defs = dg.Definitions.merge(pipelines, dg.Definitions(resources=build_resources(home),
                                                                  executor=dg.in_process_executor))
            assert {k.to_user_string() for k in defs.resolve_all_asset_keys()} == {
                "payments/payments", "payments/features", "payments/model", "payments/predictions",
                "payments/serving_predictions", "payments/labels", "payments/performance"}
            assert {s.name for s in defs.sensors} == {"payments_landing_sensor", "payments_champion_sensor",
                                                      "payments_labels_sensor", "payments_performance_automation"}
            path = write_landing_file(day, 2_000, Path(home.landing_uri))
            path.rename(path.with_name(f"payments_{day}.parquet"))  # the second pipeline's own landing pattern
            land_sandbox_labels(defs, home, dagster_instance, day, "payments_labels_day", 2_000)
            for job in ("payments_ingest_day", "payments_train_model", "payments_score_day"):
                kwargs = {} if job.endswith("train_model") else {"partition_key": day}
                result = defs.resolve_job_def(job).execute_in_process(instance=dagster_instance, **kwargs)
                assert result.success, job
    key = dg.AssetKey(["payments", "predictions"])
    from batch_inference_tests.checks_helpers import latest_check

    for name in ("predictions_schema", "predictions_completeness", "predictions_drift", "predictions_model_version"):
        evaluation = latest_check(dagster_instance, key, name, partition=day)
        assert evaluation is not None and evaluation.passed, name
    meta = dagster_instance.get_latest_materialization_event(key).asset_materialization.metadata
    assert meta["model_name"].value == "payment_risk" and meta["rows"].value == 2_000
    from batch_inference.lake import Lake

    lake = Lake(f"{home.lake_uri}/payments")
    assert lake.read("serving_predictions", day).num_rows == 2_000  # published, in its own lake folder
    assert not Lake(f"{home.lake_uri}/card_fraud").exists("predictions", day)
