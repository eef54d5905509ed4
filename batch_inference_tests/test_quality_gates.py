"""Quality gates driven through the `dagster` CLI as a user would."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from batch_inference.lake import Lake
from batch_inference_tests.checks_helpers import latest_check
from batch_inference_tests.conftest import subprocess_env
from batch_inference_tests.invariants import assert_day_scored_once

BIN = Path(sys.executable).parent
ALL = "transactions,features,predictions,serving_predictions"
pytestmark = pytest.mark.integration


def _generate(env, day, *extra):
    subprocess.run([str(BIN / "batch-inference"), "generate", "--date", day, "--rows", "4000", *extra],
                   env=env, check=True, capture_output=True)


def _materialize(env, day, select=ALL) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dagster"), "asset", "materialize", "-m", "batch_inference.definitions",
                           "--select", select, "--partition", day], env=env, capture_output=True, text=True,
                          timeout=300)


def test_corrupt_rows_are_quarantined_and_accounted_for(home, registry):
    env, day = subprocess_env(home), "2026-02-01"
    _generate(env, day, "--corrupt-rate", "0.02")
    proc = _materialize(env, day)
    assert proc.returncode == 0, proc.stderr[-4000:]
    champion = registry.require_champion().version
    assert_day_scored_once(home, day, champion)
    quarantine = Lake(home.lake_uri).read("quarantine", day, part="part-transactions.parquet")
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
        assert instance.get_materialized_partitions(dg.AssetKey("serving_predictions")) == {day}


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
        assert not instance.get_materialized_partitions(dg.AssetKey("serving_predictions"))
    assert Lake(home.lake_uri).exists("predictions", day)  # kept for inspection, not published


def test_dropped_column_fails_before_anything_is_written(home, registry):
    env, day = subprocess_env(home), "2026-02-03"
    _generate(env, day, "--drop-column", "merchant_category")
    proc = _materialize(env, day)
    assert proc.returncode != 0
    assert "missing required column(s) merchant_category" in proc.stdout + proc.stderr
    assert f"transactions_{day}.parquet" in proc.stdout + proc.stderr
    lake = Lake(home.lake_uri)
    for asset in ("transactions", "features", "predictions"):
        assert not lake.exists(asset, day), asset
