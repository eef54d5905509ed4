"""The drift check's wiring: the card_fraud pipeline's YAML (its critical features), a real lake with
features and predictions partitions, and the check's column choice, seasonal references and metadata."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from batch_inference.components.checks import distribution_drift
from batch_inference.components.pipeline import Pipeline
from batch_inference.defs.card_fraud.features import compute_features
from batch_inference.defs.card_fraud.generator import generate_transactions
from batch_inference.lake import Lake
from batch_inference.pipelines import discover
from batch_inference.quality.drift import ALERT, OK, WARN, DriftThresholds, FeatureSettings
from batch_inference.quality.reference import build_reference

ROWS = 4_000
TODAY = dt.date(2026, 3, 4)  # a Wednesday


def _score(features: pa.Table) -> np.ndarray:
    """A fixed model of the volume-independent columns (the real MLP is in the calibration numbers)."""
    x = (0.8 * features.column("log_amount").to_numpy() + 1.5 * features.column("is_foreign").to_numpy()
         + 1.0 * features.column("is_night").to_numpy())
    return 1.0 / (1.0 + np.exp(-(x - 5.0)))


def _features(date: dt.date, transactions: pa.Table | None = None) -> pa.Table:
    table = compute_features(transactions or generate_transactions(date.isoformat(), ROWS))
    return table.append_column("day_of_week", pa.array(np.full(table.num_rows, date.weekday(), np.float32)))


@pytest.fixture(scope="module")
def card_fraud() -> Pipeline:
    return discover()["card_fraud"]


@pytest.fixture(scope="module")
def reference() -> dict:
    training = pa.concat_tables(_features(TODAY - dt.timedelta(days=60 + i)) for i in range(7))
    columns = {c: training.column(c).to_numpy() for c in training.column_names
               if c not in ("record_id", "label", "day_of_week")}  # the model was trained without it
    return build_reference(columns, _score(training), "score")


def _store(tmp_path, p: Pipeline, days: dict[dt.date, pa.Table]) -> Lake:
    lake = Lake(str(tmp_path / "lake" / p.name))
    for date, features in days.items():
        lake.write(p.spec.features.asset, date.isoformat(), features)
        lake.write(p.spec.scoring.asset, date.isoformat(),
                   pa.table({"record_id": features.column("record_id"), "score": _score(features)}))
    return lake


def _with_features(p: Pipeline, features: dict[str, FeatureSettings]) -> Pipeline:
    quality = p.spec.quality.model_copy(update={"features": features})
    return Pipeline(p.spec.model_copy(update={"quality": quality}), p.root)


def _check(p: Pipeline, reference: dict, store: Lake) -> tuple[str, dict]:
    return distribution_drift(p, reference, store, TODAY.isoformat(), p.spec.quality.thresholds,
                              p.spec.quality.drift_features)


def test_card_fraud_declares_critical_features(card_fraud: Pipeline) -> None:
    features = card_fraud.spec.quality.features
    assert {n for n, s in features.items() if s.critical} == {"log_amount", "card_not_present"}


def test_a_clean_day_passes_and_the_critical_features_are_always_checked(tmp_path, card_fraud, reference) -> None:
    status, metadata = _check(card_fraud, reference, _store(tmp_path, card_fraud, {TODAY: _features(TODAY)}))
    assert status == OK, metadata["reason"]
    table = metadata["drift_table"].value
    for name in ("score", "log_amount", "card_not_present"):
        assert f"| {name} |" in table
    assert "| card_not_present | critical |" in table and "| score | output |" in table
    assert metadata["blocking_columns"] == "none" and metadata["warned_features"] == "none"
    assert metadata["features_checked"] == 1 + 2 + card_fraud.spec.quality.drift_features


def test_amounts_in_cents_block_through_a_critical_feature(tmp_path, card_fraud, reference) -> None:
    raw = generate_transactions(TODAY.isoformat(), ROWS)
    cents = raw.set_column(raw.column_names.index("amount"), "amount", pc.multiply(raw.column("amount"), 100.0))
    status, metadata = _check(card_fraud, reference, _store(tmp_path, card_fraud, {TODAY: _features(TODAY, cents)}))
    assert status == ALERT, metadata["reason"]
    assert "log_amount" in metadata["blocking_columns"].split(", ")
    assert metadata["blocking_max_psi"] > 0.25
    not_critical = _with_features(card_fraud, {})
    status, metadata = _check(not_critical, reference, _store(tmp_path, not_critical, {TODAY: _features(TODAY, cents)}))
    assert "log_amount" in metadata["warned_features"].split(", ")  # without the YAML, a feature only warns


def test_a_weekday_feature_with_a_same_weekday_reference(tmp_path, card_fraud, reference) -> None:
    days = {TODAY - dt.timedelta(days=d): _features(TODAY - dt.timedelta(days=d)) for d in range(0, 29)}
    store = _store(tmp_path, card_fraud, days)
    seasonal = _with_features(card_fraud, {**card_fraud.spec.quality.features,
                                           "day_of_week": FeatureSettings(reference="same_weekday", weeks=4)})
    status, metadata = _check(seasonal, reference, store)
    assert status == OK, metadata["reason"]
    assert "same weekday: 2026-02-25, 2026-02-18, 2026-02-11, 2026-02-04" in metadata["drift_table"].value
    # against every day of the last four weeks (a week-long reference), the constant day would cry wolf
    categorical = _with_features(card_fraud, {"day_of_week": FeatureSettings(categorical=True)})
    week = {**reference, "day_of_week": build_reference(
        {"day_of_week": np.concatenate([t.column("day_of_week").to_numpy() for t in days.values()])},
        np.zeros(1), "unused")["day_of_week"]}
    status, metadata = _check(categorical, week, store)
    assert status == OK and "one draw" in metadata["drift_table"].value, metadata["reason"]
    status, metadata = _check(_with_features(card_fraud, {"day_of_week": FeatureSettings()}), week, store)
    assert status == WARN and metadata["warned_features"] == "day_of_week"  # undeclared: warns, never blocks


def test_a_misnamed_feature_setting_is_an_alert(tmp_path, card_fraud, reference) -> None:
    typo = _with_features(card_fraud, {"log_amout": FeatureSettings(critical=True)})
    status, metadata = _check(typo, reference, _store(tmp_path, typo, {TODAY: _features(TODAY)}))
    assert status == ALERT
    assert "quality.features of pipeline card_fraud names log_amout" in metadata["reason"]


def test_a_small_day_warns_at_most(tmp_path, card_fraud, reference) -> None:
    raw = generate_transactions(TODAY.isoformat(), 300, drift=1.0)
    status, metadata = distribution_drift(card_fraud, reference, _store(tmp_path, card_fraud, {TODAY: _features(
        TODAY, raw)}), TODAY.isoformat(), DriftThresholds(min_rows=500), 6)
    assert status == WARN and "small sample: 300 rows < 500" in metadata["reason"]
