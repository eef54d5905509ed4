"""Which drift blocks a day and which warns: outputs and critical features block, other features warn;
many features at once (Holm); per-feature settings (exclude, categorical, critical, a seasonal
reference); day-level features such as a weekday that must not cry wolf."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from batch_inference.quality.drift import (
    ALERT,
    CRITICAL,
    FEATURE,
    OK,
    OUTPUT,
    WARN,
    FeatureSettings,
    compare,
    counts_pvalue,
    holm,
    ks_pvalue,
)
from batch_inference.quality.reference import build_reference, column_reference, partitions_reference

RNG_SEED = 11


def test_holm_adjusts_step_down() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == [] and holm([0.7]) == [0.7]
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_p_values_are_calibrated_and_sensitive() -> None:
    rng = np.random.default_rng(RNG_SEED)
    reference = column_reference(rng.normal(size=50_000))
    proportions = np.asarray(reference["proportions"])
    null = [counts_pvalue(np.bincount(np.searchsorted(reference["edges"], rng.normal(size=300)), minlength=10),
                          proportions, 50_000) for _ in range(200)]
    assert 0.02 <= np.mean(np.asarray(null) < 0.05) <= 0.09  # about 5% under the null
    shifted = np.bincount(np.searchsorted(reference["edges"], rng.normal(0.5, 1, size=300)), minlength=10)
    assert counts_pvalue(shifted, proportions, 50_000) < 1e-6
    sparse = np.bincount(np.searchsorted(reference["edges"], rng.normal(size=12)), minlength=10)
    assert 0.0 < counts_pvalue(sparse, proportions, 50_000) <= 1.0  # simulated: 12 rows, 10 bins
    assert ks_pvalue(0.5, 30, 50_000) < 1e-6 < ks_pvalue(0.1, 30, 50_000)


def _many_features(rng: np.random.Generator, rows: int, columns: int = 100, shift: dict | None = None) -> dict:
    shift = shift or {}
    return {f"f{i}": rng.normal(shift.get(f"f{i}", 0.0), 1.0, size=rows) for i in range(columns)}


@pytest.mark.parametrize("rows", [60, 2_000])
def test_a_hundred_clean_features_do_not_warn(rows: int) -> None:
    """100 columns tested at once on 20 clean days: no false alarm (Holm within the family)."""
    rng = np.random.default_rng(RNG_SEED)
    reference = build_reference(_many_features(rng, 20_000), rng.random(20_000), "score")
    for day in range(20):
        report = compare(reference, {"score": rng.random(rows), **_many_features(rng, rows)},
                         outputs={"score"})
        assert report.status in (OK, "insufficient_sample"), f"day {day}: {report.reason}"
    moved = compare(reference, {"score": rng.random(rows), **_many_features(rng, rows, shift={"f7": 1.0})},
                    outputs={"score"})
    assert moved.status == WARN and moved.flagged(WARN) == ["f7"], moved.as_markdown()


def _reference(rng: np.random.Generator) -> dict:
    x = rng.normal(size=20_000)
    return build_reference({"x": x, "y": rng.normal(size=20_000)}, 1 / (1 + np.exp(-x)), "score")


def test_outputs_block_features_warn_critical_features_block() -> None:
    rng = np.random.default_rng(RNG_SEED)
    reference = _reference(rng)
    x = rng.normal(size=5_000)
    day = {"score": 1 / (1 + np.exp(-x)), "x": x, "y": rng.normal(1.0, 1.0, size=5_000)}  # y moved a lot
    report = compare(reference, day, outputs={"score"})
    assert report.status == WARN and not report.blocked and report.flagged(WARN) == ["y"]
    assert {f.name: f.role for f in report.features} == {"score": OUTPUT, "x": FEATURE, "y": FEATURE}
    assert "not critical: warns, does not block" in report.reason
    critical = compare(reference, day, outputs={"score"}, settings={"y": FeatureSettings(critical=True)})
    assert critical.blocked and critical.flagged(ALERT) == ["y"]
    assert next(f.role for f in critical.features if f.name == "y") == CRITICAL
    excluded = compare(reference, day, outputs={"score"}, settings={"y": FeatureSettings(exclude=True)})
    assert excluded.status == OK and [f.name for f in excluded.features] == ["score", "x"]
    x = rng.normal(1.0, 1.0, size=5_000)  # the input the model leans on moved: so did its output
    moved = compare(reference, {"score": 1 / (1 + np.exp(-x)), "x": x}, outputs={"score"})
    assert moved.blocked and moved.flagged(ALERT) == ["score"] and moved.flagged(WARN) == ["x"]
    small = compare(reference, {"score": 1 / (1 + np.exp(-x[:200])), "x": x[:200]}, outputs={"score"},
                    settings={"x": FeatureSettings(critical=True)})
    assert small.status == WARN and not small.blocked  # a small day never blocks


def test_categorical_compares_per_value_and_names_unseen_values() -> None:
    rng = np.random.default_rng(RNG_SEED)
    codes = rng.choice(6, size=20_000, p=[0.3, 0.25, 0.2, 0.15, 0.07, 0.03]).astype(float)
    reference = {"channel": column_reference(codes)}
    assert reference["channel"]["values"] == [0, 1, 2, 3, 4, 5]
    categorical = {"channel": FeatureSettings(categorical=True)}
    clean = rng.choice(6, size=3_000, p=[0.3, 0.25, 0.2, 0.15, 0.07, 0.03]).astype(float)
    assert compare(reference, {"channel": clean}, outputs=(), settings=categorical).status == OK
    new_code = np.where(rng.random(3_000) < 0.2, 9.0, clean)
    report = compare(reference, {"channel": new_code}, outputs=(), settings=categorical)
    assert report.status == WARN, report.as_markdown()
    assert "values the reference never saw: 9" in report.reason and "no KS" in report.reason


def _weekday_days(weeks: int, rows: int = 1_000) -> list[np.ndarray]:
    return [np.full(rows, float(d % 7)) for d in range(7 * weeks)]


def test_a_day_level_feature_does_not_cry_wolf_when_declared() -> None:
    """Issue 22 item 2: a weekday or weekend column is constant within a day; against a week-long
    reference its PSI was 7.9 and the day was blocked."""
    training = np.concatenate(_weekday_days(4))
    reference = {"day_of_week": column_reference(training),
                 "is_weekend": column_reference((training >= 5).astype(float))}
    wednesday = {"day_of_week": np.full(2_000, 2.0), "is_weekend": np.zeros(2_000)}
    plain = compare(reference, wednesday, outputs=())
    assert plain.status == WARN and not plain.blocked  # undeclared: a feature warns at most
    declared = {name: FeatureSettings(categorical=True) for name in wednesday}
    report = compare(reference, wednesday, outputs=(), settings=declared)
    assert report.status == OK, report.as_markdown()
    assert "constant 2 within the day: one draw, 14% of the reference" in report.as_markdown()
    never_seen = compare(reference, {"day_of_week": np.full(2_000, 9.0)}, outputs=(),
                         settings={"day_of_week": FeatureSettings(categorical=True, critical=True)})
    assert never_seen.blocked and "never saw" in never_seen.reason


def test_a_seasonal_reference_of_the_same_weekday() -> None:
    past_wednesdays = [np.full(1_000, 2.0) for _ in range(4)]
    reference = partitions_reference(past_wednesdays)
    assert reference["days"] == 4 and reference["day_level"]
    report = compare({"day_of_week": reference}, {"day_of_week": np.full(2_000, 2.0)}, outputs=())
    assert report.status == OK and report.features[0].psi == 0.0
    # a row-level column pooled from partitions is not day-level: a day collapsing to one value moves
    rng = np.random.default_rng(RNG_SEED)
    varied = partitions_reference([rng.integers(0, 6, 1_000).astype(float) for _ in range(4)])
    assert not varied["day_level"]
    collapsed = compare({"channel": varied}, {"channel": np.full(2_000, 1.0)}, outputs=(),
                        settings={"channel": FeatureSettings(categorical=True)})
    assert collapsed.status == WARN, collapsed.as_markdown()


def test_a_numeric_day_level_feature_is_ranked_among_its_days() -> None:
    """A daily value (a temperature, a count of open stores) against 4 past same weekdays: a new day
    outside their range happens 2 times in 5 by chance, so it is no alarm."""
    rng = np.random.default_rng(RNG_SEED)
    reference = partitions_reference([np.full(500, t) for t in rng.normal(15, 5, size=4)])
    for temperature in rng.normal(15, 5, size=20):
        assert compare({"t": reference}, {"t": np.full(800, temperature)}, outputs=()).status == OK


def test_feature_settings_validate() -> None:
    assert FeatureSettings.model_validate({"reference": "same_weekday", "weeks": 2}).weeks == 2
    with pytest.raises(ValidationError, match="weeks must be at least 1"):
        FeatureSettings(weeks=0)
    with pytest.raises(ValidationError, match="excluded"):
        FeatureSettings.model_validate({"excluded": True})
    with pytest.raises(ValidationError):
        FeatureSettings.model_validate({"reference": "last_week"})


def test_same_weekday_reference_reads_the_lake(tmp_path) -> None:
    """A seasonal reference from real lake partitions: the same weekday over the last weeks only."""
    import datetime as dt

    import pyarrow as pa

    from batch_inference.lake import Lake
    from batch_inference.quality.reference import same_weekday_dates, same_weekday_reference

    lake = Lake(str(tmp_path / "lake"))
    start = dt.date(2026, 1, 1)
    for offset in range(35):  # five weeks of daily partitions, the weekday as a feature
        day = start + dt.timedelta(days=offset)
        lake.write("features", day.isoformat(), pa.table({"dow": np.full(500, float(day.weekday()), np.float32)}))
    today = "2026-02-05"  # a Thursday, weekday 3
    assert same_weekday_dates(today, 2) == ["2026-01-29", "2026-01-22"]
    training = column_reference(np.arange(3_500, dtype=float) % 7)
    entry = same_weekday_reference(lake, "features", "dow", today, 4, training)
    assert entry["days"] == 4 and entry["day_level"] and entry["values"] == [3.0]
    assert entry["source"] == "same weekday: 2026-01-29, 2026-01-22, 2026-01-15, 2026-01-08"
    report = compare({"dow": entry}, {"dow": np.full(800, 3.0)}, outputs=(),
                     settings={"dow": FeatureSettings(reference="same_weekday")})
    assert report.status == OK and "same weekday: 2026-01-29" in report.as_markdown()
    friday = compare({"dow": entry}, {"dow": np.full(800, 4.0)}, outputs=(),
                     settings={"dow": FeatureSettings(categorical=True, reference="same_weekday")})
    assert friday.status == WARN and "never saw" in friday.reason  # a Friday's value on a Thursday
    numeric = compare({"dow": entry}, {"dow": np.full(800, 4.0)}, outputs=())
    assert numeric.status == OK and "outside the reference's range [3, 3] of 4 day(s)" in numeric.as_markdown()
    fallback = same_weekday_reference(lake, "features", "dow", "2026-01-03", 4, training)
    assert fallback["source"].startswith("training reference: no features partition of the same weekday")
    assert same_weekday_reference(lake, "features", "missing_column", today, 4, None) is None
