"""The quality library: pandera schemas, drift statistics and completeness accounting."""

import numpy as np
import pyarrow as pa
import pytest

from batch_inference.defs.card_fraud.features import compute_features
from batch_inference.defs.card_fraud.generator import generate_transactions
from batch_inference.defs.card_fraud.schemas import FeaturesSchema, PredictionsSchema, TransactionsSchema
from batch_inference.ingest import screen_rows
from batch_inference.quality.completeness import check_completeness
from batch_inference.quality.drift import (
    ALERT,
    INSUFFICIENT_SAMPLE,
    OK,
    WARN,
    DriftThresholds,
    compare,
    ks_statistic,
    psi,
)
from batch_inference.quality.reference import column_reference as reference_histogram
from batch_inference.quality.schema_validation import validate


def _predictions(n: int = 100) -> pa.Table:
    import datetime as dt

    return pa.table({
        "record_id": pa.array([f"r{i}" for i in range(n)], pa.string()),
        "score": pa.array(np.linspace(0, 1, n, dtype=np.float32)),
        "model_name": pa.array(["m"] * n),
        "model_version": pa.array(["4"] * n),
        "scored_at": pa.array([dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * n, pa.timestamp("us", tz="UTC")),
        "run_id": pa.array(["run"] * n),
    })


def test_clean_data_passes_every_schema():
    valid, _ = screen_rows(generate_transactions("2026-01-01", 2_000), TransactionsSchema, "transactions")
    assert validate(TransactionsSchema, valid).passed
    assert validate(FeaturesSchema, compute_features(valid)).passed
    assert validate(PredictionsSchema, _predictions()).passed


def test_schema_failures_list_every_failing_column():
    t = _predictions()
    t = t.set_column(1, "score", pa.array(np.linspace(-1, 2, 100, dtype=np.float32)))
    t = t.set_column(0, "record_id", pa.array(["dup"] * 100))
    report = validate(PredictionsSchema, t)
    assert not report.passed
    assert report.failing_columns == ["record_id", "score"]
    assert report.failure_count > 100 and len(report.failure_sample) == 20


def test_features_schema_rejects_wrong_dtype_and_missing_feature():
    f = compute_features(generate_transactions("2026-01-01", 200))
    report = validate(FeaturesSchema, f.set_column(1, "log_amount", f.column("log_amount").cast(pa.float64())))
    assert not report.passed and "log_amount" in report.failing_columns
    assert not validate(FeaturesSchema, f.drop_columns(["is_night"])).passed


def test_unvalidated_transactions_fail_the_schema():
    raw = generate_transactions("2026-01-01", 5_000, corrupt_rate=0.05)
    report = validate(TransactionsSchema, raw)
    assert not report.passed
    assert {"record_id", "amount", "merchant_category"} <= set(report.failing_columns)


def test_psi_and_ks():
    rng = np.random.default_rng(0)
    ref = reference_histogram(rng.normal(size=50_000))
    assert ref["continuous"]
    same, shifted = rng.normal(size=20_000), rng.normal(loc=1.0, size=20_000)
    assert psi(ref, same) < 0.01 and ks_statistic(ref, same) < 0.03
    assert psi(ref, shifted) > 0.25 and ks_statistic(ref, shifted) > 0.3
    binary = reference_histogram((rng.random(10_000) < 0.1).astype(float))
    assert not binary["continuous"]
    assert psi(binary, (rng.random(10_000) < 0.5).astype(float)) > 0.25


def test_drift_status_bands():
    rng = np.random.default_rng(1)
    reference = {"x": reference_histogram(rng.normal(size=50_000))}
    t = DriftThresholds()
    assert compare(reference, {"x": rng.normal(size=20_000)}, t).status == OK
    assert compare(reference, {"x": rng.normal(loc=0.3, size=20_000)}, t).status == WARN
    assert compare(reference, {"x": rng.normal(loc=2.0, size=20_000)}, t).status == ALERT
    # Below the minimum sample a day is tested at its size and warns at most; an empty reference is
    # an ERROR, never a pass.
    assert compare(reference, {"x": rng.normal(loc=2.0, size=100)}, t).status == WARN
    assert compare(reference, {"x": rng.normal(size=100)}, t).status == INSUFFICIENT_SAMPLE
    empty = compare({}, {"x": rng.normal(size=20_000)}, t)
    assert empty.status == ALERT and empty.features_checked == 0
    table = compare(reference, {"x": rng.normal(size=1_000), "unknown": np.zeros(3)}, t).as_markdown()
    assert "| x |" in table


@pytest.mark.parametrize(("scored", "quarantined", "passed"), [
    (["a", "b"], ["c", None], True),
    (["a", "b", "b"], [None], False),        # scored twice
    (["a", "b"], [None], False),             # c unaccounted (and counts differ)
    (["a", "b", "zz"], [None], False),       # invented id
])
def test_completeness(scored, quarantined, passed):
    landing = pa.array(["a", "b", "c", None])
    report = check_completeness(landing, pa.array(scored, pa.string()), pa.array(quarantined, pa.string()))
    assert report.passed is passed
    assert report.landing_rows == 4


VOLUME_CASES = [  # landing, scored, quarantined, out of day, limit, passed
    (0, 0, 0, 0, 0.1, True),  # a valid empty file: a quiet day
    (1000, 950, 50, 0, 0.1, True),
    (1000, 900, 100, 0, 0.1, True),  # at the limit
    (1000, 899, 101, 0, 0.1, False),
    (1000, 0, 1000, 1000, 0.1, False),  # every row of another day
    (1000, 0, 1000, 0, 1.0, False),  # nothing scored fails whatever the limit
    (1000, 990, 10, 0, 0.0, False),
]


@pytest.mark.parametrize(("landing", "scored", "quarantined", "out_of_day", "limit", "passed"), VOLUME_CASES)
def test_volume_gate(landing, scored, quarantined, out_of_day, limit, passed):
    from batch_inference.quality.completeness import CompletenessReport, check_volume

    report = check_volume(CompletenessReport(landing, scored, quarantined, 0, 0, 0), out_of_day, limit)
    assert report.passed is passed
    assert f"{out_of_day:,} of them outside the file's day" in report.message
    assert ("docs/runbooks/F2.md" in report.message) is not passed
    if landing and not scored:
        assert report.message.startswith("nothing scored from a non-empty file")


def test_out_of_day_rows_are_counted_from_the_quarantine_reasons():
    import datetime as dt

    from batch_inference.quality.completeness import count_out_of_day

    t = generate_transactions("2026-01-02", 30)  # a file named 2026-01-01 holding the next day's rows
    _, bad = screen_rows(t, TransactionsSchema, "transactions", event_time="event_time", date="2026-01-01",
                         tolerance=dt.timedelta(hours=1))
    late = dt.datetime(2026, 1, 2, 1, tzinfo=dt.UTC)  # the first hour of the next day is within tolerance
    expected = sum(1 for x in t.column("event_time").to_pylist() if x >= late)
    assert expected > 0 and count_out_of_day(bad.column("reason")) == expected
    assert count_out_of_day(["amount: ...", None]) == 0
