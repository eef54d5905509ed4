"""Comparing a model version's outputs with the current champion's on the same rows, and with labels.

Used twice: on the fixed evaluation set when a version is registered (the promotion gate), and per
partition for a challenger scored in shadow. Plain numpy, no example names.

- scores (probabilities): Spearman rank correlation, the decision-flip rate at the operating
  threshold, the PSI between the two versions' score distributions, AUC / PR-AUC against labels;
- embeddings: mean cosine to the champion's embedding of the same row, and the agreement of the k
  nearest neighbours within the set;
- regression: mean absolute error against labels and the champion's.

A degenerate output (constant or near-constant scores, collapsed embeddings) fails whatever the
reference or the champion says: a comparison with nothing to compare must not pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from batch_inference.quality.drift import psi, psi_bias
from batch_inference.quality.performance import pr_auc, roc_auc
from batch_inference.quality.reference import column_reference

SCORES, EMBEDDINGS, REGRESSION = "scores", "embeddings", "regression"
KINDS = (SCORES, EMBEDDINGS, REGRESSION)


@dataclass(frozen=True)
class ComparisonThresholds:
    """What a version must reach against the champion (and labels) to pass."""

    min_rank_correlation: float = 0.7
    max_flip_rate: float = 0.1
    max_psi: float = 0.25
    max_auc_drop: float = 0.02  # candidate AUC / PR-AUC may fall at most this far below the champion's
    min_mean_cosine: float = 0.8
    min_neighbour_agreement: float = 0.5
    neighbours: int = 10
    neighbour_sample: int = 1_000
    max_error_increase: float = 0.1  # regression: MAE at most 10% above the champion's
    min_std: float = 1e-3  # below this spread an output is degenerate
    max_mode_share: float = 0.99  # ... or when one value holds this share of the rows
    max_embedding_concentration: float = 0.98  # |mean of unit embeddings|: 1 = every row the same
    min_rows: int = 30  # fewer rows are not judged (insufficient sample), as the drift check does


@dataclass
class ComparisonReport:
    """Figures (name -> value, None when not computable), failures, and the verdict."""

    kind: str
    rows: int
    figures: dict[str, float | None] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    degenerate: str | None = None
    compared_with: str = "nothing"  # "champion", "labels", "champion and labels"
    insufficient: str | None = None  # too few rows to judge: passes, and says so

    @property
    def passed(self) -> bool:
        return self.degenerate is None and not self.failures

    @property
    def reason(self) -> str:
        if self.degenerate:
            return f"degenerate output: {self.degenerate}"
        if self.failures:
            return "; ".join(self.failures)
        if self.insufficient:
            return self.insufficient
        shown = ", ".join(f"{k} {v:.4f}" for k, v in self.figures.items() if isinstance(v, float))
        return f"passed against {self.compared_with} on {self.rows} rows" + (f" ({shown})" if shown else "")

    def as_dict(self) -> dict:
        return {"kind": self.kind, "rows": self.rows, "passed": self.passed, "reason": self.reason,
                "compared_with": self.compared_with,
                "figures": {k: (None if v is None or (isinstance(v, float) and math.isnan(v)) else round(v, 6))
                            for k, v in self.figures.items()}}


# -- the figures ---------------------------------------------------------------------------------

def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return ranks


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) != len(b):
        raise ValueError(f"spearman needs aligned values: {len(a)} vs {len(b)}")
    ra, rb = _ranks(a), _ranks(b)
    if len(a) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def flip_rate(a, b, threshold: float) -> float:
    """Share of rows whose decision (score >= threshold) differs between the two versions."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.mean((a >= threshold) != (b >= threshold))) if len(a) else float("nan")


def version_psi(champion, candidate) -> float:
    """PSI of the candidate's values over the champion's quantile bins, bias-corrected for sample size."""
    reference = column_reference(np.asarray(champion, dtype=np.float64))
    if not reference["proportions"]:
        return float("nan")
    values = np.asarray(candidate, dtype=np.float64)
    return max(psi(reference, values) - psi_bias(reference, int(np.isfinite(values).sum())), 0.0)


def _unit(rows) -> np.ndarray:
    m = np.asarray(rows, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"embeddings must be a rows x dimensions matrix, got shape {m.shape}")
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms > 0, norms, 1.0)


def mean_cosine(a, b) -> float:
    """Mean cosine between each row's two embeddings (same row, two versions)."""
    ua, ub = _unit(a), _unit(b)
    if ua.shape != ub.shape:
        raise ValueError(f"embeddings of the two versions differ in shape: {ua.shape} vs {ub.shape}")
    return float(np.mean(np.sum(ua * ub, axis=1))) if len(ua) else float("nan")


def neighbour_agreement(a, b, k: int = 10, sample: int = 1_000) -> float:
    """Mean overlap of each row's k nearest neighbours (by cosine, within the first `sample` rows)
    under the two versions: 1 when both order the neighbourhoods alike."""
    ua, ub = _unit(a)[:sample], _unit(b)[:sample]
    n = len(ua)
    if n < 2:
        return float("nan")
    k = min(k, n - 1)

    def knn(u: np.ndarray) -> np.ndarray:
        sims = u @ u.T
        np.fill_diagonal(sims, -np.inf)
        return np.argpartition(-sims, k - 1, axis=1)[:, :k]

    na, nb = knn(ua), knn(ub)
    return float(np.mean([len(np.intersect1d(x, y, assume_unique=True)) / k for x, y in zip(na, nb, strict=True)]))


def concentration(embeddings) -> float:
    """Length of the mean unit embedding: near 1 when every row maps to about the same vector."""
    u = _unit(embeddings)
    return float(np.linalg.norm(u.mean(axis=0))) if len(u) else float("nan")


def degenerate_reason(kind: str, values, t: ComparisonThresholds) -> str | None:
    """Why an output is degenerate (constant, near-constant, collapsed, non-finite), or None."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return "no output rows"
    if not np.isfinite(values).all():
        return f"{int((~np.isfinite(values)).sum())} non-finite output value(s)"
    if kind == EMBEDDINGS:
        c = concentration(values)
        if c > t.max_embedding_concentration:
            return (f"embeddings collapsed: the mean unit embedding has length {c:.4f} > "
                    f"{t.max_embedding_concentration} (every row maps to about the same vector)")
        return None
    std = float(values.std())
    if std < t.min_std:
        return f"constant output: standard deviation {std:.2e} < {t.min_std:g} (e.g. every value {values[0]:.6g})"
    _, counts = np.unique(np.round(values, 6), return_counts=True)
    share = counts.max() / len(values)
    if share > t.max_mode_share:
        return f"near-constant output: {share:.1%} of the rows share one value"
    return None


# -- the comparisons -----------------------------------------------------------------------------

def _limit(report: ComparisonReport, name: str, value: float, limit: float, at_least: bool) -> None:
    report.figures[name] = value
    if math.isnan(value):
        report.failures.append(f"{name} could not be computed")
    elif (value < limit) if at_least else (value > limit):
        report.failures.append(f"{name} {value:.4f} {'<' if at_least else '>'} {limit:g}")


def compare_scores(candidate, champion=None, labels=None, threshold: float = 0.5,
                   thresholds: ComparisonThresholds | None = None) -> ComparisonReport:
    """A probability-scoring version against the champion's scores of the same rows and the labels."""
    t = thresholds or ComparisonThresholds()
    cand = np.asarray(candidate, dtype=np.float64).reshape(-1)
    report = ComparisonReport(SCORES, len(cand), degenerate=degenerate_reason(SCORES, cand, t))
    report.figures["std"] = float(cand.std()) if len(cand) else float("nan")
    against = []
    if champion is not None:
        champ = np.asarray(champion, dtype=np.float64).reshape(-1)
        if len(champ) != len(cand):
            raise ValueError(f"the champion scored {len(champ)} rows, the candidate {len(cand)}")
        against.append("champion")
        _limit(report, "rank_correlation", spearman(cand, champ), t.min_rank_correlation, at_least=True)
        _limit(report, "flip_rate", flip_rate(cand, champ, threshold), t.max_flip_rate, at_least=False)
        _limit(report, "psi", version_psi(champ, cand), t.max_psi, at_least=False)
    if labels is not None:
        y = np.asarray(labels, dtype=np.float64).reshape(-1)
        if len(y) != len(cand):
            raise ValueError(f"{len(y)} labels for {len(cand)} scored rows")
        against.append("labels")
        report.figures["auc"] = roc_auc(y, cand)
        report.figures["pr_auc"] = pr_auc(y, cand)
        if champion is not None:
            for name, metric in (("auc", roc_auc), ("pr_auc", pr_auc)):
                theirs = metric(y, champ)
                report.figures[f"champion_{name}"] = theirs
                if report.figures[name] < theirs - t.max_auc_drop:
                    report.failures.append(f"{name} {report.figures[name]:.4f} < champion {theirs:.4f} - "
                                           f"{t.max_auc_drop:g}")
    report.compared_with = " and ".join(against) or "nothing"
    return report


def compare_embeddings(candidate, champion=None, thresholds: ComparisonThresholds | None = None) -> ComparisonReport:
    """An embedding version against the champion's embeddings of the same rows."""
    t = thresholds or ComparisonThresholds()
    cand = np.asarray(candidate, dtype=np.float64)
    report = ComparisonReport(EMBEDDINGS, len(cand), degenerate=degenerate_reason(EMBEDDINGS, cand, t))
    report.figures["concentration"] = concentration(cand) if len(cand) else float("nan")
    if champion is not None:
        champ = np.asarray(champion, dtype=np.float64)
        report.compared_with = "champion"
        _limit(report, "mean_cosine", mean_cosine(cand, champ), t.min_mean_cosine, at_least=True)
        _limit(report, "neighbour_agreement", neighbour_agreement(cand, champ, t.neighbours, t.neighbour_sample),
               t.min_neighbour_agreement, at_least=True)
        report.figures["concentration_champion"] = concentration(champ)
    return report


def compare_regression(candidate, champion=None, labels=None,
                       thresholds: ComparisonThresholds | None = None) -> ComparisonReport:
    """A regression version: error against labels, and against the champion's error."""
    t = thresholds or ComparisonThresholds()
    cand = np.asarray(candidate, dtype=np.float64).reshape(-1)
    report = ComparisonReport(REGRESSION, len(cand), degenerate=degenerate_reason(REGRESSION, cand, t))
    against = []
    if champion is not None:
        champ = np.asarray(champion, dtype=np.float64).reshape(-1)
        against.append("champion")
        _limit(report, "rank_correlation", spearman(cand, champ), t.min_rank_correlation, at_least=True)
    if labels is not None:
        y = np.asarray(labels, dtype=np.float64).reshape(-1)
        against.append("labels")
        report.figures["mae"] = float(np.mean(np.abs(cand - y)))
        report.figures["rmse"] = float(np.sqrt(np.mean((cand - y) ** 2)))
        if champion is not None:
            theirs = float(np.mean(np.abs(champ - y)))
            report.figures["champion_mae"] = theirs
            if report.figures["mae"] > theirs * (1 + t.max_error_increase):
                report.failures.append(f"mae {report.figures['mae']:.4f} > champion {theirs:.4f} "
                                       f"x {1 + t.max_error_increase:g}")
    report.compared_with = " and ".join(against) or "nothing"
    return report


def compare(kind: str, candidate, champion=None, labels=None, threshold: float = 0.5,
            thresholds: ComparisonThresholds | None = None) -> ComparisonReport:
    """Dispatch on the output kind: `scores`, `embeddings` or `regression`."""
    t = thresholds or ComparisonThresholds()
    if kind == SCORES:
        report = compare_scores(candidate, champion, labels, threshold, t)
    elif kind == EMBEDDINGS:
        report = compare_embeddings(candidate, champion, t)
    elif kind == REGRESSION:
        report = compare_regression(candidate, champion, labels, t)
    else:
        raise ValueError(f"unknown output kind {kind!r}: one of {', '.join(KINDS)}")
    if report.rows < t.min_rows:  # figures kept for the record, nothing judged on a handful of rows
        report.insufficient = f"insufficient sample: {report.rows} rows < {t.min_rows}; not judged"
        report.failures, report.degenerate = [], None
    return report
