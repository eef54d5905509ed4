"""Shared fixtures: an isolated data root per test and a small trained, registered model."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from batch_inference.cli import write_landing_file
from batch_inference.features import FEATURE_COLUMNS, compute_features
from batch_inference.generator import generate_transactions
from batch_inference.modeling.registry import ModelRegistry
from batch_inference.modeling.training import TrainingParams, train
from batch_inference.settings import Settings, load_settings

DAYS = ("2026-01-05", "2026-01-06")
SMALL = TrainingParams(hidden_sizes=(32, 32), epochs=6, batch_size=256, max_rows=20_000)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A fresh BATCH_INFERENCE_HOME (and DAGSTER_HOME) for one test."""
    root = tmp_path / "bi_home"
    monkeypatch.setenv("BATCH_INFERENCE_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster_home"))
    for name in ("BATCH_INFERENCE_LAKE_URI", "BATCH_INFERENCE_LANDING_URI", "MLFLOW_TRACKING_URI",
                 "BATCH_INFERENCE_WAREHOUSE", "BATCH_INFERENCE_ENV"):
        monkeypatch.delenv(name, raising=False)
    (root / "dagster_home").mkdir(parents=True)
    return load_settings()


@pytest.fixture(scope="session")
def trained_small():
    """A small model trained once per session on generated features."""
    table = pa.concat_tables(compute_features(generate_transactions(d, 5_000)) for d in DAYS)
    return train(table, FEATURE_COLUMNS, SMALL)


@pytest.fixture
def registry(home: Settings, trained_small) -> ModelRegistry:
    """A real MLflow (sqlite) registry in the test's data root with a champion registered."""
    reg = ModelRegistry(home.mlflow_tracking_uri, home.model_name, home.mlflow_artifact_root)
    ref = reg.register(trained_small)
    reg.set_champion(ref.version)
    return reg


@pytest.fixture
def landed(home: Settings) -> list[str]:
    """Landing files for DAYS, 3,000 rows each."""
    for day in DAYS:
        write_landing_file(day, 3_000, Path(home.landing_uri))
    return list(DAYS)


@pytest.fixture
def dagster_instance(home: Settings):
    """A real DagsterInstance in the test's DAGSTER_HOME, with the project's dagster.yaml."""
    import shutil

    import dagster as dg

    shutil.copy(Path(__file__).resolve().parents[1] / "dagster.yaml", home.dagster_home / "dagster.yaml")
    with dg.DagsterInstance.get() as inst:
        yield inst


def project_defs(settings: Settings):
    """The project's Definitions with resources pointing at `settings` (a test's data root)."""
    import dagster as dg

    from batch_inference import definitions
    from batch_inference.jobs import ALL_JOBS

    return dg.Definitions(assets=definitions.defs.assets, asset_checks=definitions.defs.asset_checks,
                          jobs=ALL_JOBS, resources=definitions.build_resources(settings))


def subprocess_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["BATCH_INFERENCE_HOME"] = str(settings.home)
    env["DAGSTER_HOME"] = str(settings.dagster_home)
    return env
