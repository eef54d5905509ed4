"""Quality gates driven through the `dagster` CLI as a user would."""

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from batch_inference_tests.checks_helpers import latest_check
from batch_inference_tests.conftest import key, pipeline_lake, subprocess_env
from batch_inference_tests.invariants import assert_day_scored_once

BIN = Path(sys.executable).parent
ALL = ",".join(f"card_fraud/{a}" for a in ("transactions", "features", "predictions", "serving_predictions"))
pytestmark = pytest.mark.integration


def _generate(env, day, *extra):
    subprocess.run([str(BIN / "batch-inference"), "generate", "--date", day, "--rows", "4000", *extra],
                   env=env, check=True, capture_output=True)


def _materialize(env, day, select=ALL, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dagster"), "asset", "materialize", "-m", "batch_inference.definitions",
                           "--select", select, "--partition", day, *extra], env=env, capture_output=True,
                          text=True, timeout=300)


def test_corrupt_rows_are_quarantined_and_accounted_for(home, registry):
    env, day = subprocess_env(home), "2026-02-01"
    _generate(env, day, "--corrupt-rate", "0.02")
    proc = _materialize(env, day)
    assert proc.returncode == 0, proc.stderr[-4000:]
    champion = registry.require_champion().version
    assert_day_scored_once(home, day, champion)
    quarantine = pipeline_lake(home).read("quarantine", day, part="part-transactions.parquet")
    assert 40 < quarantine.num_rows < 200
    assert all(quarantine.column("reason").to_pylist()) and set(quarantine.column("stage").to_pylist()) == {
        "transactions"}
    with dg.DagsterInstance.get() as instance:
        completeness = latest_check(instance, "predictions", "predictions_completeness", day)
        assert completeness.passed
        meta = completeness.metadata
        assert meta["landing_rows"].value == 4000
        assert meta["scored_rows"].value + meta["quarantined_rows"].value == 4000
        assert meta["quarantined_at_transactions"].value == quarantine.num_rows
        for name in ("predictions_schema", "predictions_model_version"):
            assert latest_check(instance, "predictions", name, day).passed, name
        assert latest_check(instance, "transactions", "transactions_schema", day).passed
        assert instance.get_materialized_partitions(key("serving_predictions")) == {day}


def test_drifted_day_fails_the_drift_check_and_is_not_published(home, registry):
    env, day = subprocess_env(home), "2026-02-02"
    _generate(env, day, "--drift", "1.0")
    proc = _materialize(env, day)
    assert proc.returncode != 0  # the blocking check fails the run
    with dg.DagsterInstance.get() as instance:
        drift = latest_check(instance, "predictions", "predictions_drift", day)
        assert not drift.passed and drift.severity == dg.AssetCheckSeverity.ERROR
        assert drift.metadata["status"].value == "alert"
        table = drift.metadata["drift_table"].value
        assert "| score |" in table and table.count("| alert |") >= 2  # the score and a feature
        assert not instance.get_materialized_partitions(key("serving_predictions"))
    lake = pipeline_lake(home)
    assert lake.exists("predictions", day)  # kept for inspection, not published
    assert not lake.exists("serving_predictions", day)

    # Publishing the day in a later run, on its own, is refused too: its latest predictions failed a check.
    publish = _materialize(env, day, select="card_fraud/serving_predictions")
    assert publish.returncode != 0
    assert "refusing to publish card_fraud/predictions" in publish.stdout + publish.stderr
    assert "predictions_drift: failed" in publish.stdout + publish.stderr
    assert not lake.exists("serving_predictions", day)
    with dg.DagsterInstance.get() as instance:
        assert not instance.get_materialized_partitions(key("serving_predictions"))

    # An owner who accepts the shift re-scores with lifted thresholds (run config); its checks pass,
    # and a later run that only publishes finds them and publishes.
    lifted = json.dumps({"resources": {"quality": {"config": {"psi_alert": 1e9, "ks_alert": 1.0,
                                                              "psi_warn": 1e9, "ks_warn": 1.0}}}})
    rescored = _materialize(env, day, "card_fraud/predictions", "--config-json", lifted)
    assert rescored.returncode == 0, rescored.stderr[-4000:]
    publish = _materialize(env, day, select="card_fraud/serving_predictions")
    assert publish.returncode == 0, publish.stderr[-4000:]
    assert lake.read("serving_predictions", day).equals(lake.read("predictions", day))
    with dg.DagsterInstance.get() as instance:
        assert instance.get_materialized_partitions(key("serving_predictions")) == {day}


def test_dropped_column_fails_before_anything_is_written(home, registry):
    env, day = subprocess_env(home), "2026-02-03"
    _generate(env, day, "--drop-column", "merchant_category")
    proc = _materialize(env, day)
    assert proc.returncode != 0
    assert "missing required column(s) merchant_category" in proc.stdout + proc.stderr
    assert f"transactions_{day}.parquet" in proc.stdout + proc.stderr
    lake = pipeline_lake(home)
    for asset in ("transactions", "features", "predictions"):
        assert not lake.exists(asset, day), asset
