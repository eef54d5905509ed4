"""Distribution drift against the reference recorded with the model version at training time.

Per column: PSI over the reference's bins, and for continuous columns a KS statistic at the
reference's percentiles. Both are judged as effect sizes that must also stand out of sampling
noise, so that neither big days nor small days raise false alarms:

- PSI is reported bias-corrected: with k bins, two samples of one distribution give a PSI of
  about (k - 1)(1/n_cur + 1/n_ref) (n·PSI is ~chi-square with k - 1 degrees of freedom); that is
  subtracted, and a column only warns above max(psi_warn, chi-square noise at `alpha`).
- KS compares the current CDF with the reference's CDF at the same points (exact for tied
  values) and only warns above max(ks_warn, c(alpha)·sqrt(1/n_cur + 1/n_ref)), the KS critical
  value. Discrete or heavily tied columns (decided when the reference was built) get PSI only.
- Days with fewer than `min_rows` rows get status "insufficient_sample" and pass.
- A reference with no usable column, or a comparison that checked no column, is an ALERT:
  a drift gate that checked nothing must not pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from batch_inference.quality.reference import KS_MAX_MODE_SHARE, KS_MIN_DISTINCT, reference_problems

OK, WARN, ALERT = "ok", "warn", "alert"
INSUFFICIENT_SAMPLE = "insufficient_sample"
SKIPPED = "skipped"
_EPS = 1e-4
_SEVERITY = {OK: 0, INSUFFICIENT_SAMPLE: 0, SKIPPED: 0, WARN: 1, ALERT: 2}


@dataclass(frozen=True)
class DriftThresholds:
    """PSI bands 0.1 / 0.25 and KS effect sizes 0.1 / 0.2, above sampling noise at `alpha`.

    `min_rows`: below this many rows a day's drift is not judged (status insufficient_sample).
    """

    psi_warn: float = 0.1
    psi_alert: float = 0.25
    ks_warn: float = 0.1
    ks_alert: float = 0.2
    min_rows: int = 500
    alpha: float = 1e-3


@dataclass
class FeatureDrift:
    """One column's drift: bias-corrected PSI, KS (None when not applicable), status and why."""

    name: str
    psi: float
    ks: float | None
    status: str
    reason: str = ""
    rows: int = 0
    psi_raw: float = 0.0
    psi_noise: float = 0.0
    ks_noise: float | None = None

    @property
    def checked(self) -> bool:
        return self.status in (OK, WARN, ALERT)


@dataclass
class DriftReport:
    """Per-column results and the day's verdict (`status`, `reason`, `passed`)."""

    features: list[FeatureDrift] = field(default_factory=list)
    rows: int = 0
    min_rows: int = 0
    problem: str | None = None  # a reference/config problem: always ALERT

    @property
    def features_checked(self) -> int:
        return sum(f.checked for f in self.features)

    @property
    def status(self) -> str:
        if self.problem:
            return ALERT
        if self.rows < self.min_rows:
            return INSUFFICIENT_SAMPLE
        if self.features_checked == 0:
            return ALERT
        return max((f.status for f in self.features), key=_SEVERITY.__getitem__, default=OK)

    @property
    def reason(self) -> str:
        if self.problem:
            return self.problem
        if self.rows < self.min_rows:
            return f"insufficient sample: {self.rows} rows < {self.min_rows}; drift not judged"
        if self.features_checked == 0:
            return "no column could be checked against the reference"
        flagged = [f"{f.name}: {f.reason}" for f in self.features if f.status in (WARN, ALERT)]
        return "; ".join(flagged) if flagged else f"{self.features_checked} column(s) within thresholds"

    @property
    def passed(self) -> bool:
        """True for ok and insufficient_sample; warn and alert fail (alert should block)."""
        return self.status in (OK, INSUFFICIENT_SAMPLE)

    def as_markdown(self) -> str:
        lines = [f"**{self.status}**: {self.reason}", "",
                 "| feature | PSI | KS | status | reason |", "|---|---:|---:|---|---|"]
        for f in sorted(self.features, key=lambda f: (-_SEVERITY[f.status], -f.psi)):
            ks = "–" if f.ks is None else f"{f.ks:.3f}"
            reason = f.reason.replace("|", "\\|")
            lines.append(f"| {f.name} | {f.psi:.4f} | {ks} | {f.status} | {reason} |")
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


def psi_noise(reference: dict, n: int, alpha: float) -> float:
    """Bias-corrected PSI that sampling noise alone exceeds with probability `alpha`."""
    dof = max(sum(p > 0 for p in reference["proportions"]) - 1, 1)
    z = NormalDist().inv_cdf(1.0 - alpha)  # Wilson-Hilferty chi-square quantile
    chi2 = dof * (1.0 - 2.0 / (9 * dof) + z * math.sqrt(2.0 / (9 * dof))) ** 3
    return max(chi2 * (1.0 / max(n, 1) + _inv_n(reference)) - psi_bias(reference, n), 0.0)


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


def ks_noise(reference: dict, n: int, alpha: float) -> float:
    """KS critical value at `alpha` for samples of `n` and the reference's size."""
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt(1.0 / max(n, 1) + _inv_n(reference))


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


def compare_column(name: str, reference: dict, values: np.ndarray,
                   t: DriftThresholds) -> FeatureDrift:
    """Drift of one column against its reference entry."""
    problems = reference_problems(reference)
    if problems:
        return FeatureDrift(name, 0.0, None, SKIPPED, f"unusable reference: {'; '.join(problems)}")
    values = _finite(values)
    n = len(values)
    if n < t.min_rows:
        return FeatureDrift(name, 0.0, None, INSUFFICIENT_SAMPLE,
                            f"{n} finite values < {t.min_rows}", rows=n)
    raw = psi(reference, values)
    corrected = max(raw - psi_bias(reference, n), 0.0)
    p_noise = psi_noise(reference, n, t.alpha)
    notes, status = [], OK
    for level, psi_limit in ((ALERT, t.psi_alert), (WARN, t.psi_warn)):
        if corrected > max(psi_limit, p_noise):
            status = level
            notes.append(f"PSI {corrected:.3f} > {level} {max(psi_limit, p_noise):.3f}")
            break
    use_ks, why_not = ks_applies(reference)
    k = ks_statistic(reference, values) if use_ks else None
    k_noise = ks_noise(reference, n, t.alpha) if use_ks else None
    if k is not None and k_noise is not None:
        for level, ks_limit in ((ALERT, t.ks_alert), (WARN, t.ks_warn)):
            if k > max(ks_limit, k_noise):
                if _SEVERITY[level] > _SEVERITY[status]:
                    status = level
                notes.append(f"KS {k:.3f} > {level} {max(ks_limit, k_noise):.3f}")
                break
    if not notes:
        notes.append(f"PSI {corrected:.3f} ≤ {max(t.psi_warn, p_noise):.3f}"
                     + (f", KS {k:.3f} ≤ {max(t.ks_warn, k_noise):.3f}" if k is not None and k_noise else ""))
    if why_not:
        notes.append(why_not)
    return FeatureDrift(name, corrected, k, status, "; ".join(notes), rows=n, psi_raw=raw,
                        psi_noise=p_noise, ks_noise=k_noise)


def compare(reference: Mapping[str, dict] | None, current: Mapping[str, np.ndarray],
            thresholds: DriftThresholds | None = None) -> DriftReport:
    """Drift of each column in `current` against `reference`; see the module docstring."""
    t = thresholds or DriftThresholds()
    rows = max((len(v) for v in current.values()), default=0)
    report = DriftReport(rows=rows, min_rows=t.min_rows)
    reference = reference or {}
    usable = [name for name, entry in reference.items() if not reference_problems(entry)]
    if not usable:
        report.problem = ("the model version's drift reference has no usable column"
                          + ("" if reference else " (it is empty or missing)"))
    for name, values in current.items():
        entry = reference.get(name)
        if entry is None:
            report.features.append(FeatureDrift(name, 0.0, None, SKIPPED, "no reference for this column"))
            continue
        report.features.append(compare_column(name, entry, values, t))
    if not report.problem and not current:
        report.problem = "no column was given to check"
    return report
