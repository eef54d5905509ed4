"""Distribution drift against the reference recorded with the model version at training time.

PSI over the reference's quantile bins for the score and the key features; for continuous
features also a KS statistic, computed against the reference's percentiles (exact to 1%).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OK, WARN, ALERT = "ok", "warn", "alert"
_EPS = 1e-4


@dataclass(frozen=True)
class DriftThresholds:
    """Industry-standard PSI bands (0.1 / 0.25); KS as an effect size, not a p-value."""

    psi_warn: float = 0.1
    psi_alert: float = 0.25
    ks_warn: float = 0.1
    ks_alert: float = 0.2


@dataclass
class FeatureDrift:
    name: str
    psi: float
    ks: float | None
    status: str


@dataclass
class DriftReport:
    features: list[FeatureDrift] = field(default_factory=list)

    @property
    def status(self) -> str:
        statuses = {f.status for f in self.features}
        return ALERT if ALERT in statuses else WARN if WARN in statuses else OK

    def as_markdown(self) -> str:
        lines = ["| feature | PSI | KS | status |", "|---|---:|---:|---|"]
        for f in sorted(self.features, key=lambda f: -f.psi):
            ks = "–" if f.ks is None else f"{f.ks:.3f}"
            lines.append(f"| {f.name} | {f.psi:.4f} | {ks} | {f.status} |")
        return "\n".join(lines)


def psi(reference: dict, values: np.ndarray) -> float:
    """Population stability index of `values` over the reference's bins."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return 0.0
    edges = np.asarray(reference["edges"], dtype=np.float64)
    expected = np.asarray(reference["proportions"], dtype=np.float64)
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(expected))
    actual = counts / len(values)
    expected, actual = np.clip(expected, _EPS, None), np.clip(actual, _EPS, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_statistic(reference: dict, values: np.ndarray) -> float | None:
    """Max distance between the empirical CDF of `values` and the reference's, at its percentiles."""
    points = reference.get("percentiles")
    values = np.sort(values[np.isfinite(values)])
    if not points or len(values) == 0:
        return None
    points = np.asarray(points, dtype=np.float64)
    expected = np.linspace(0.0, 1.0, len(points))
    actual = np.searchsorted(values, points, side="right") / len(values)
    return float(np.max(np.abs(actual - expected)))


def compare(reference: dict[str, dict], current: dict[str, np.ndarray],
            thresholds: DriftThresholds | None = None) -> DriftReport:
    """Drift of each column in `current` that has a reference."""
    t = thresholds or DriftThresholds()
    report = DriftReport()
    for name, values in current.items():
        ref = reference.get(name)
        if not ref:
            continue
        p = psi(ref, values)
        k = ks_statistic(ref, values) if ref.get("continuous") else None
        k_val = k or 0.0
        status = ALERT if p > t.psi_alert or k_val > t.ks_alert else (
            WARN if p > t.psi_warn or k_val > t.ks_warn else OK)
        report.features.append(FeatureDrift(name, p, k, status))
    return report
