"""Distribution drift of a day's outputs and inputs, judged together, against a reference.

The reference is recorded with the model version at training time, or, per feature, built from the
lake's past partitions (`partitions_reference`, e.g. the same weekday over the last weeks).

**What blocks.** A day is blocked (ALERT) only when the model's *output* moves, or a feature
declared `critical` moves. Any other feature that moves WARNs, named: an input can shift for
reasons the model absorbs (a per-entity daily count grows with the day's volume while the score does
not move), and the output is what consumers see.

**When a column has moved.** Both an effect size and a significance test must say so:

- effect: PSI over the reference's bins, bias-corrected (two samples of one distribution give a
  PSI of about (k - 1)(1/n + 1/n_ref), which is subtracted), against the 0.1 / 0.25 bands; and for
  continuous columns the KS distance at the reference's percentiles against 0.1 / 0.2;
- significance: a two-sample chi-square test of the bin counts (simulated under the reference
  when a bin expects fewer than 5 rows), and the KS test (exact `kstwo`, n·n_ref/(n+n_ref) rows),
  combined per column (Bonferroni, x2). Many columns are tested at once, so the p-values are
  **Holm-adjusted** within each family: the blocking family (outputs and critical features) and
  the warning family (the other features). Each family's chance of a false alarm on a clean day
  is then at most `alpha`, however many features a pipeline has (Holm controls the family-wise
  error like Bonferroni, and rejects at least as much). Large days make every p-value tiny, so
  there the effect bands decide; small days make effects noisy, so there the test decides.

**Day-level values.** A column that is constant within the day (a weekday, a weekend flag) is one
draw, not `rows` draws. When the column is marked categorical, or its reference was constant
within each of its days (a same-weekday reference), such a day is judged as one draw: a categorical
one passes if the reference holds that value and moves (p = 0) only on a value it never saw; a
numeric one by its rank among the reference's days (outside the range of D days: p = 2/(D + 1)).

**Small days** (fewer than `min_rows`) are tested too, with the p-values of their size, but never
block: a column that moves there WARNs; otherwise the day is "insufficient_sample", with the
smallest adjusted p-value in the reason. A reference with no usable column, or a comparison that
checked no column, is an ALERT: a drift gate that checked nothing must not pass.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator

from batch_inference.quality.reference import KS_MAX_MODE_SHARE, KS_MIN_DISTINCT, reference_problems

OK, WARN, ALERT = "ok", "warn", "alert"
INSUFFICIENT_SAMPLE = "insufficient_sample"
SKIPPED = "skipped"
OUTPUT, CRITICAL, FEATURE = "output", "critical", "feature"
_EPS = 1e-4
_SEVERITY = {OK: 0, INSUFFICIENT_SAMPLE: 0, SKIPPED: 0, WARN: 1, ALERT: 2}
_SIMULATIONS = 100_000  # Monte Carlo chi-square p-values for sparse bins: resolution 1e-5


@dataclass(frozen=True)
class DriftThresholds:
    """PSI bands 0.1 / 0.25 and KS effect sizes 0.1 / 0.2; `alpha`: family-wise false-alarm rate.

    `min_rows`: below this many rows a day is tested with small-sample p-values, and warns at most.
    """

    psi_warn: float = 0.1
    psi_alert: float = 0.25
    ks_warn: float = 0.1
    ks_alert: float = 0.2
    min_rows: int = 500
    alpha: float = 1e-3


class FeatureSettings(BaseModel):
    """One feature's drift settings: the pipeline YAML's `quality.features.<name>`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exclude: bool = False
    """Leave the feature out of the drift check."""
    categorical: bool = False
    """Compare value by value (no KS); a value the reference never saw is named; a day constant
    in the feature is one draw."""
    critical: bool = False
    """Its ALERT blocks the day, like the output's (other features warn at most)."""
    reference: Literal["training", "same_weekday"] = "training"
    """`same_weekday`: compare with the same weekday's partitions of the last `weeks` weeks in the
    lake instead of the training reference (seasonal features)."""
    weeks: int = 4

    @field_validator("weeks")
    @classmethod
    def _positive_weeks(cls, weeks: int) -> int:
        if weeks < 1:
            raise ValueError(f"weeks must be at least 1, got {weeks}")
        return weeks


@dataclass
class FeatureDrift:
    """One column's drift: bias-corrected PSI, KS (None when not applicable), p-values, status, why."""

    name: str
    psi: float
    ks: float | None
    status: str
    reason: str = ""
    rows: int = 0
    psi_raw: float = 0.0
    role: str = FEATURE
    p_value: float | None = None
    p_adjusted: float | None = None
    size: str = OK  # the effect-size band reached (ok / warn / alert), significant or not

    @property
    def checked(self) -> bool:
        return self.status in (OK, WARN, ALERT)


@dataclass
class DriftReport:
    """Per-column results and the day's verdict (`status`, `reason`, `passed`, `blocked`)."""

    features: list[FeatureDrift] = field(default_factory=list)
    rows: int = 0
    min_rows: int = 0
    problem: str | None = None  # a reference/config problem: always ALERT

    @property
    def features_checked(self) -> int:
        return sum(f.checked for f in self.features)

    @property
    def small(self) -> bool:
        return self.rows < self.min_rows

    @property
    def status(self) -> str:
        if self.problem:
            return ALERT
        if self.rows == 0:
            return INSUFFICIENT_SAMPLE
        if self.features_checked == 0:
            return ALERT
        worst = max((f.status for f in self.features), key=_SEVERITY.__getitem__, default=OK)
        return INSUFFICIENT_SAMPLE if self.small and worst == OK else worst

    @property
    def reason(self) -> str:
        if self.problem:
            return self.problem
        if self.rows == 0:
            return "0 rows: nothing to judge"
        if self.features_checked == 0:
            return "no column could be checked against the reference"
        flagged = [f"{f.name}: {f.reason}" for f in self.features if f.status in (WARN, ALERT)]
        if self.small:
            p = min((f.p_adjusted for f in self.features if f.p_adjusted is not None), default=1.0)
            head = (f"small sample: {self.rows} rows < {self.min_rows}, tested at its size and never blocking; "
                    f"smallest adjusted p = {p:.2g}")
            return head + ("; " + "; ".join(flagged) if flagged else ": no column moved beyond sampling noise")
        return "; ".join(flagged) if flagged else f"{self.features_checked} column(s) within thresholds"

    @property
    def passed(self) -> bool:
        """True for ok and insufficient_sample; warn and alert fail (only alert blocks)."""
        return self.status in (OK, INSUFFICIENT_SAMPLE)

    @property
    def blocked(self) -> bool:
        """Whether the day must not be published: the output or a critical feature moved."""
        return self.status == ALERT

    def flagged(self, status: str) -> list[str]:
        """Names of the columns with this status."""
        return [f.name for f in self.features if f.status == status]

    def as_markdown(self) -> str:
        lines = [f"**{self.status}**: {self.reason}", "",
                 "| column | role | PSI | KS | p (Holm) | status | reason |", "|---|---|---:|---:|---:|---|---|"]
        for f in sorted(self.features, key=lambda f: (-_SEVERITY[f.status], f.role != OUTPUT, -f.psi)):
            ks = "–" if f.ks is None else f"{f.ks:.3f}"
            p = "–" if f.p_adjusted is None else f"{f.p_adjusted:.2g}"
            reason = f.reason.replace("|", "\\|")
            lines.append(f"| {f.name} | {f.role} | {f.psi:.4f} | {ks} | {p} | {f.status} | {reason} |")
        return "\n".join(lines)


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def _inv_n(reference: Mapping) -> float:
    n = reference.get("n")
    return 1.0 / n if isinstance(n, int | float) and n > 0 else 0.0  # legacy: no size recorded


def psi(reference: dict, values: np.ndarray, pseudo_count: float = 0.0) -> float:
    """Population stability index of `values` over the reference's bins.

    `pseudo_count` > 0 smooths both sides (e.g. 0.5: Jeffreys, half a count per bin; the
    reference's `rows`, when recorded, give its counts); 0 is the plain, not bias-corrected PSI.
    """
    values = _finite(values)
    if len(values) == 0:
        return 0.0
    edges = np.asarray(reference["edges"], dtype=np.float64)
    expected = np.asarray(reference["proportions"], dtype=np.float64)
    k = len(expected)
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=k)
    actual = (counts + pseudo_count) / (len(values) + pseudo_count * k)
    ref_rows = reference.get("rows")
    if pseudo_count and ref_rows:
        expected = (expected * ref_rows + pseudo_count) / (ref_rows + pseudo_count * k)
    expected, actual = np.clip(expected, _EPS, None), np.clip(actual, _EPS, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi_bias(reference: dict, n: int) -> float:
    """Expected PSI of a same-distribution sample of `n` rows: (k - 1)(1/n + 1/n_ref)."""
    bins = sum(p > 0 for p in reference["proportions"])
    return max(bins - 1, 0) * (1.0 / max(n, 1) + _inv_n(reference))


def _reference_cdf(reference: dict) -> np.ndarray:
    """The reference CDF at its percentiles; derived from tied percentiles for old references."""
    if reference.get("cdf"):
        return np.asarray(reference["cdf"], dtype=np.float64)
    points = np.asarray(reference["percentiles"], dtype=np.float64)
    positions = np.linspace(0.0, 1.0, len(points))
    # F(p) is at least the highest percentile rank at which the value p appears.
    last = np.searchsorted(points, points, side="right") - 1
    return positions[last]


def ks_statistic(reference: dict, values: np.ndarray) -> float | None:
    """Max distance between the CDF of `values` and the reference's CDF, at its percentiles."""
    points = reference.get("percentiles")
    values = np.sort(_finite(values))
    if not points or len(values) == 0:
        return None
    points = np.asarray(points, dtype=np.float64)
    actual = np.searchsorted(values, points, side="right") / len(values)
    return float(np.max(np.abs(actual - _reference_cdf(reference))))


def ks_applies(reference: dict) -> tuple[bool, str]:
    """Whether KS is meaningful for the column, and if not why (discrete or heavily tied)."""
    if not reference.get("continuous"):
        distinct = reference.get("distinct")
        return False, f"KS n/a: discrete ({distinct} distinct values)" if distinct else "KS n/a: discrete"
    mode_share = reference.get("mode_share")
    if mode_share is None:  # legacy reference: the longest run of equal percentiles
        points = reference.get("percentiles") or []
        _, runs = np.unique(np.asarray(points, dtype=np.float64), return_counts=True)
        mode_share = (runs.max() - 1) / max(len(points) - 1, 1) if len(points) else 0.0
        distinct = len(runs)
        if distinct < KS_MIN_DISTINCT // 2:
            return False, f"KS n/a: only {distinct} distinct percentiles"
    if mode_share > KS_MAX_MODE_SHARE:
        return False, f"KS n/a: heavily tied ({mode_share:.0%} of the reference at one value)"
    return True, ""



def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control for many tests at once)."""
    m = len(pvalues)
    adjusted, running = [1.0] * m, 0.0
    for rank, i in enumerate(sorted(range(m), key=pvalues.__getitem__)):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def counts_pvalue(counts: np.ndarray, proportions: np.ndarray, n_ref: float | None, seed: int = 0) -> float:
    """p-value that a day's bin `counts` come from the reference's bin `proportions`.

    A two-sample chi-square test of homogeneity (the reference holds `n_ref` rows; without it the
    reference is taken as exact). When a bin expects fewer than 5 of the day's rows the chi-square
    approximation fails; the statistic is then simulated under the reference (Monte Carlo).
    """
    from scipy import stats

    counts = np.asarray(counts, dtype=np.float64)
    proportions = np.asarray(proportions, dtype=np.float64)
    keep = (proportions > 0) | (counts > 0)
    counts, proportions = counts[keep], proportions[keep] / max(proportions[keep].sum(), _EPS)
    n = counts.sum()
    if n == 0 or len(counts) < 2:
        return 1.0
    expected = n * np.clip(proportions, 1e-12, None)
    observed = float(np.sum((counts - expected) ** 2 / expected))
    if (n * proportions).min() < 5 and n < 100_000:
        return _simulated_pvalue(observed, int(n), proportions, expected, seed)
    if n_ref:
        reference = proportions * n_ref
        pooled = (counts + reference) / (n + n_ref)
        ok = pooled > 0
        observed = float(np.sum((counts[ok] - n * pooled[ok]) ** 2 / (n * pooled[ok]))
                         + np.sum((reference[ok] - n_ref * pooled[ok]) ** 2 / (n_ref * pooled[ok])))
    return float(stats.chi2.sf(observed, len(counts) - 1))


def _simulated_pvalue(observed: float, n: int, proportions: np.ndarray, expected: np.ndarray, seed: int) -> float:
    """Monte Carlo p-value of Pearson's statistic under the reference, in rounds: 1,000 draws, and
    up to _SIMULATIONS only while fewer than 10 exceed it (only small p-values need the resolution)."""
    rng = np.random.default_rng(seed)
    drawn = exceeded = 0
    while drawn < _SIMULATIONS and exceeded < 10:
        size = 1_000 if drawn == 0 else _SIMULATIONS - drawn
        simulated = rng.multinomial(n, proportions, size=size)
        exceeded += int(np.sum(np.sum((simulated - expected) ** 2 / expected, axis=1) >= observed * (1 - 1e-9)))
        drawn += size
    return float((1 + exceeded) / (1 + drawn))


def ks_pvalue(distance: float, n: int, n_ref: float | None) -> float:
    """p-value of a KS distance between a day of `n` rows and a reference of `n_ref` (exact `kstwo`
    at the effective size n·n_ref/(n + n_ref); at n when the reference's size is unknown)."""
    from scipy import stats

    effective = n * n_ref / (n + n_ref) if n_ref else n
    return float(stats.kstwo.sf(distance, max(1, round(effective))))


def _bin_counts(reference: dict, values: np.ndarray) -> np.ndarray:
    edges = np.asarray(reference["edges"], dtype=np.float64)
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(reference["proportions"]))


def _categories(reference: dict, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[float, int]]:
    """Per-value reference proportions and day counts (plus a last bucket: values never seen), and
    the unseen values with their counts."""
    known = np.asarray(reference["values"], dtype=np.float64)
    ref_counts = np.asarray(reference["counts"], dtype=np.float64)
    index = np.clip(np.searchsorted(known, values), 0, len(known) - 1)
    seen = np.isclose(known[index], values, rtol=1e-6, atol=1e-9)
    counts = np.append(np.bincount(index[seen], minlength=len(known)), np.sum(~seen)).astype(np.float64)
    unseen_values, unseen_counts = np.unique(values[~seen], return_counts=True)
    return (np.append(ref_counts / ref_counts.sum(), 0.0), counts,
            dict(zip(unseen_values.tolist(), unseen_counts.tolist(), strict=True)))


def _psi_of(expected: np.ndarray, counts: np.ndarray) -> float:
    actual = counts / max(counts.sum(), 1.0)
    expected, actual = np.clip(expected, _EPS, None), np.clip(actual, _EPS, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _one_draw(reference: dict, value: float, categorical: bool) -> tuple[float, str]:
    """p-value and note for a day constant at `value`: one draw from the reference.

    Categorical: the share of reference values no likelier than it (0 for a value never seen).
    Numeric: two-sided by its rank in the reference; a reference of D days (`days`) holds only D
    draws, so a new day falls outside their range with probability 2/(D + 1) by chance alone.
    """
    if categorical and reference.get("values"):
        known = np.asarray(reference["values"], dtype=np.float64)
        probs = np.asarray(reference["counts"], dtype=np.float64)
        probs = probs / probs.sum()
        match = np.isclose(known, value, rtol=1e-6, atol=1e-9)
        if not match.any():
            return 0.0, f"constant {value:g} within the day, a value the reference never saw"
        share = float(probs[match].sum())
        return float(probs[probs <= share * (1 + 1e-9)].sum()), \
            f"constant {value:g} within the day: one draw, {share:.0%} of the reference"
    points = np.asarray(reference.get("percentiles") or [], dtype=np.float64)
    days = reference.get("days")
    floor = 2.0 / (days + 1) if days else 0.0
    if not len(points):
        return 1.0, f"constant {value:g} within the day: one draw (no reference percentiles)"
    if value < points[0] or value > points[-1]:
        return floor, (f"constant {value:g} within the day, outside the reference's range "
                       f"[{points[0]:g}, {points[-1]:g}]" + (f" of {days} day(s)" if days else ""))
    rank = float(np.interp(value, points, _reference_cdf(reference)))
    return max(floor, min(1.0, 2 * min(rank, 1 - rank) + 1.0 / max(len(points) - 1, 1))), \
        f"constant {value:g} within the day: one draw, at the reference's {rank:.0%} rank"


def _band(value: float | None, warn: float, alert: float) -> str:
    if value is None:
        return OK
    return ALERT if value > alert else WARN if value > warn else OK


def measure_column(name: str, reference: dict, values: np.ndarray, t: DriftThresholds,
                   categorical: bool = False) -> FeatureDrift:
    """Effect sizes and the (unadjusted) p-value of one column against its reference entry."""
    problems = reference_problems(reference)
    if problems:
        return FeatureDrift(name, 0.0, None, SKIPPED, f"unusable reference: {'; '.join(problems)}")
    all_values = np.asarray(values, dtype=np.float64)
    values = _finite(all_values)
    n = len(values)
    if n == 0:
        if len(all_values) == 0:
            return FeatureDrift(name, 0.0, None, INSUFFICIENT_SAMPLE, "0 rows")
        return FeatureDrift(name, 0.0, None, OK, f"no finite value in {len(all_values)} rows", rows=0,
                            p_value=0.0, size=ALERT)
    n_ref = reference.get("n") if isinstance(reference.get("n"), int | float) else None
    notes: list[str] = []
    day_level = reference.get("day_level")  # known for references built from lake partitions
    if (day_level or (categorical and day_level is None)) and values.min() == values.max() and n > 1:
        p, note = _one_draw(reference, float(values[0]), categorical)
        if reference.get("source"):
            note += f"; vs {reference['source']}"
        return FeatureDrift(name, 0.0, None, OK, note, rows=n, p_value=p, size=ALERT if p == 0.0 else OK)
    if categorical and reference.get("values"):
        expected, counts, unseen = _categories(reference, values)
        raw = _psi_of(expected, counts)
        bins = len(reference["values"])
        p = counts_pvalue(counts, expected, n_ref)
        k, use_ks, why_not = None, False, "categorical: per value, no KS"
        if unseen:
            shown = ", ".join(f"{v:g} ({c} rows)" for v, c in list(unseen.items())[:5])
            notes.append(f"values the reference never saw: {shown}")
    else:
        raw = psi(reference, values)
        bins = sum(q > 0 for q in reference["proportions"])
        p = counts_pvalue(_bin_counts(reference, values), np.asarray(reference["proportions"]), n_ref)
        use_ks, why_not = (False, "categorical: no KS") if categorical else ks_applies(reference)
        if categorical:
            why_not += " (the reference has no per-value counts: compared over its bins)"
        k = ks_statistic(reference, values) if use_ks else None
    corrected = max(raw - max(bins - 1, 0) * (1.0 / n + _inv_n(reference)), 0.0)  # the bias of psi_bias
    if k is not None:
        p = min(1.0, 2 * min(p, ks_pvalue(k, n, n_ref)))
    size = max(_band(corrected, t.psi_warn, t.psi_alert), _band(k, t.ks_warn, t.ks_alert),
               key=_SEVERITY.__getitem__)
    notes.insert(0, f"PSI {corrected:.3f}" + (f", KS {k:.3f}" if k is not None else ""))
    if reference.get("source"):
        notes.append(f"vs {reference['source']}")
    if why_not:
        notes.append(why_not)
    return FeatureDrift(name, corrected, k, OK, "; ".join(notes), rows=n, psi_raw=raw, p_value=p, size=size)


def _verdict(f: FeatureDrift, t: DriftThresholds, small: bool) -> None:
    """Set the column's status from its adjusted p-value, effect size and role."""
    bands = f"bands PSI {t.psi_warn}/{t.psi_alert}" + (f", KS {t.ks_warn}/{t.ks_alert}" if f.ks is not None else "")
    significant = f.p_adjusted is not None and f.p_adjusted <= t.alpha
    if not (significant and f.size != OK):
        why = "within sampling noise" if not significant else "within " + bands
        f.reason = f"{f.reason}; {why} (p={f.p_adjusted:.2g})" if f.p_adjusted is not None else f.reason
        return
    blocking = f.role in (OUTPUT, CRITICAL)
    f.status = ALERT if blocking and f.size == ALERT and not small else WARN
    moved = f"moved ({f.size}-sized vs {bands}; p={f.p_adjusted:.2g})"
    if small:
        moved += "; small sample: warns, never blocks"
    elif not blocking:
        moved += "; not critical: warns, does not block"
    f.reason = f"{f.reason}; {moved}"


def drift_columns(reference: Mapping[str, dict], output_names: Collection[str], present: Collection[str],
                  settings: Mapping[str, FeatureSettings], top: int) -> tuple[list[str], list[str], list[str]]:
    """Which columns a day is checked on: (outputs, features, names in `settings` that are neither).

    Outputs: the output columns with a reference entry. Features (`present`: the day's feature
    columns): every one named in `settings` and not excluded, then the `top` most important others
    (the reference's `importance`).
    """
    def excluded(name: str) -> bool:
        return name in settings and settings[name].exclude

    outputs = [n for n in output_names if n in reference and not excluded(n)]
    named = [n for n in settings if n in present and n not in output_names and not excluded(n)]
    others = sorted((n for n in reference if n in present and n not in output_names and n not in settings),
                    key=lambda n: (-float(reference[n].get("importance", 0.0)), n))
    unknown = sorted(n for n in settings if n not in present and n not in output_names)
    return outputs, named + others[:top], unknown


def compare(reference: Mapping[str, dict] | None, current: Mapping[str, np.ndarray],
            thresholds: DriftThresholds | None = None, *, outputs: Collection[str] | None = None,
            settings: Mapping[str, FeatureSettings] | None = None) -> DriftReport:
    """Drift of each column in `current` against `reference`; see the module docstring.

    `outputs`: the model's output columns (they block); without it every column may block, as a
    critical one does. `settings`: per-column `FeatureSettings` (critical, categorical, exclude).
    """
    t = thresholds or DriftThresholds()
    settings = settings or {}
    rows = max((len(v) for v in current.values()), default=0)
    report = DriftReport(rows=rows, min_rows=t.min_rows)
    reference = reference or {}
    usable = [name for name, entry in reference.items() if not reference_problems(entry)]
    if not usable:
        report.problem = ("the model version's drift reference has no usable column"
                          + ("" if reference else " (it is empty or missing)"))
    for name, values in current.items():
        s = settings.get(name) or FeatureSettings()
        if s.exclude:
            continue
        entry = reference.get(name)
        if entry is None:
            column = FeatureDrift(name, 0.0, None, SKIPPED, "no reference for this column")
        else:
            column = measure_column(name, entry, values, t, categorical=s.categorical)
        column.role = (OUTPUT if outputs is not None and name in outputs
                       else CRITICAL if outputs is None or s.critical else FEATURE)
        report.features.append(column)
    for blocking in (True, False):  # Holm within each family: what blocks, and what warns
        family = [f for f in report.features
                  if f.p_value is not None and (f.role in (OUTPUT, CRITICAL)) == blocking]
        for f, adjusted in zip(family, holm([f.p_value for f in family]), strict=True):
            f.p_adjusted = adjusted
            _verdict(f, t, report.small)
    if not report.problem and not current:
        report.problem = "no column was given to check"
    return report
