"""Shared fixtures: an isolated data root per test and a small trained, registered card-fraud model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from batch_inference.defs.card_fraud.features import labelled_features
from batch_inference.defs.card_fraud.network import MODEL_FORMAT, RiskMLPFormat, save_model
from batch_inference.defs.card_fraud.training import TrainingParams, train
from batch_inference.defs.card_fraud.vocabulary import FEATURE_COLUMNS
from batch_inference.lake import Lake
from batch_inference.modeling.artifact import REFERENCE_FILE
from batch_inference.modeling.registry import ModelRegistry
from batch_inference.pipelines import write_landing_file
from batch_inference.plugins.protocols import TrainedArtifact
from batch_inference.settings import Settings, load_settings

DAYS = ("2026-01-05", "2026-01-06")
SMALL = TrainingParams(hidden_sizes=(32, 32), epochs=6, batch_size=256, max_rows=20_000)
PIPELINE = "card_fraud"
MODEL_NAME = "transaction_risk"

__all__ = ["write_landing_file"]


def key(asset: str) -> dg.AssetKey:
    """An asset key of the card-fraud pipeline, e.g. `card_fraud/predictions`."""
    return dg.AssetKey([PIPELINE, asset])


def job(name: str) -> str:
    """A job name of the card-fraud pipeline, e.g. `card_fraud_score_day`."""
    return f"{PIPELINE}_{name}"


def pipeline_lake(settings: Settings) -> Lake:
    return Lake(f"{settings.lake_uri}/{PIPELINE}")


def fraud_registry(settings: Settings) -> ModelRegistry:
    return ModelRegistry(settings.mlflow_tracking_uri, MODEL_NAME, settings.mlflow_artifact_root,
                         formats={MODEL_FORMAT: RiskMLPFormat()})


def artifact_of(trained, directory: Path) -> TrainedArtifact:
    """A registrable version (weights, config, reference) of a trained card-fraud model."""
    save_model(trained.model, trained.config, directory)
    (directory / REFERENCE_FILE).write_text(json.dumps(trained.reference))
    return TrainedArtifact(directory, MODEL_FORMAT, trained.metrics)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A fresh BATCH_INFERENCE_HOME (and DAGSTER_HOME) for one test."""
    root = tmp_path / "bi_home"
    monkeypatch.setenv("BATCH_INFERENCE_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster_home"))
    for name in ("BATCH_INFERENCE_LAKE_URI", "BATCH_INFERENCE_LANDING_URI", "MLFLOW_TRACKING_URI",
                 "BATCH_INFERENCE_WAREHOUSE_SQL", "BATCH_INFERENCE_ENV"):
        monkeypatch.delenv(name, raising=False)
    (root / "dagster_home").mkdir(parents=True)
    return load_settings()


@pytest.fixture(scope="session")
def trained_small():
    """A small model trained once per session on generated features."""
    table = pa.concat_tables(labelled_features(d, 5_000) for d in DAYS)
    return train(table, FEATURE_COLUMNS, SMALL)


@pytest.fixture
def registry(home: Settings, trained_small, tmp_path: Path) -> ModelRegistry:
    """A real MLflow (sqlite) registry in the test's data root with a champion registered."""
    reg = fraud_registry(home)
    ref = reg.register(artifact_of(trained_small, tmp_path / "artifact"))
    promote_by_hand(reg, ref.version)
    return reg


def promote_by_hand(registry: ModelRegistry, version: str, who: str = "tests",
                    reason: str = "fixture version, promoted by hand around the gate") -> None:
    """Move `champion` with the audited override tag: the promotion gate's documented way around it.
    Tests of the gate itself go through the evaluation set and shadow partitions instead."""
    from batch_inference.modeling.promotion import PromotionGate

    PromotionGate(registry, 0).override(version, who, reason)
    registry.set_champion(version)


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

    shutil.copy(Path(__file__).resolve().parents[1] / "dagster.yaml", home.dagster_home / "dagster.yaml")
    with dg.DagsterInstance.get() as inst:
        yield inst


def project_defs(settings: Settings) -> dg.Definitions:
    """The project's Definitions with resources pointing at `settings` (a test's data root)."""
    from batch_inference.definitions import build_definitions

    return build_definitions(settings, "local")


def subprocess_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["BATCH_INFERENCE_HOME"] = str(settings.home)
    env["DAGSTER_HOME"] = str(settings.dagster_home)
    return env


def land_labels(settings: Settings, instance, first: str, last: str, rows: int) -> None:
    """Write the fraud_labels files that arrive on `first`..`last` (for days of `rows` transactions)
    and materialize the labels asset over that range in one ranged run."""
    from batch_inference.defs.card_fraud.generator import write_labels

    write_labels(first, last, rows, Path(settings.landing_uri))
    result = project_defs(settings).resolve_job_def(job("labels_day")).execute_in_process(
        instance=instance, tags={"dagster/asset_partition_range_start": first,
                                 "dagster/asset_partition_range_end": last})
    assert result.success


def land_sandbox_labels(defs, settings: Settings, instance, day: str, labels_job: str, rows: int, days: int = 25) -> None:
    """The labels of `day`'s rows, arriving over the next `days` days, landed and materialized by a
    sandbox pipeline's labels job (one ranged run)."""
    import datetime as dt

    from batch_inference.defs.card_fraud.generator import write_labels

    last = (dt.date.fromisoformat(day) + dt.timedelta(days=days)).isoformat()
    write_labels(day, last, rows, Path(settings.landing_uri))
    result = defs.resolve_job_def(labels_job).execute_in_process(
        instance=instance, tags={"dagster/asset_partition_range_start": day, "dagster/asset_partition_range_end": last})
    assert result.success
