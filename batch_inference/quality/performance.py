"""Realized performance of scores against labels: AUC, PR-AUC, Brier, calibration, precision.

Plain numpy, no example names. `scores` are probabilities in [0, 1], `labels` 0/1; a figure that
cannot be computed (no positive or no negative label) is NaN, never a made-up number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

CALIBRATION_BINS = 10


def _arrays(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels and scores must be 1-d and aligned: {y.shape} vs {s.shape}")
    if len(y) and not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"labels must be 0 or 1, found {sorted(set(np.unique(y)) - {0.0, 1.0})[:5]}")
    return y.astype(bool), s


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve: the Mann-Whitney U statistic with average ranks for ties."""
    y, s = _arrays(labels, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    _, first, counts = np.unique(s[order], return_index=True, return_counts=True)
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pr_auc(labels, scores) -> float:
    """Average precision: the precision at each positive, over the positives (ties scored together)."""
    y, s = _arrays(labels, scores)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    # One step per distinct score: all rows tied at a threshold enter together.
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[last_of_tie]
    precision = tp / (last_of_tie + 1)
    recall_step = np.diff(np.r_[0, tp]) / n_pos
    return float(np.sum(precision * recall_step))


def brier(labels, scores) -> float:
    """Mean squared error of the probabilities."""
    y, s = _arrays(labels, scores)
    return float(np.mean((s - y) ** 2)) if len(y) else float("nan")


def expected_calibration_error(labels, scores, bins: int = CALIBRATION_BINS) -> float:
    """ECE over equal-width probability bins: sum of |mean score - positive rate| weighted by rows."""
    y, s = _arrays(labels, scores)
    if not len(y):
        return float("nan")
    which = np.clip((s * bins).astype(np.int64), 0, bins - 1)
    rows = np.bincount(which, minlength=bins)
    mean_score = np.bincount(which, weights=s, minlength=bins)
    positives = np.bincount(which, weights=y.astype(np.float64), minlength=bins)
    used = rows > 0
    gaps = np.abs(mean_score[used] - positives[used]) / rows[used]
    return float(np.sum(gaps * rows[used]) / len(y))


def precision_at(labels, scores, threshold: float) -> float:
    """Share of rows at or above `threshold` that are positive (NaN when none is flagged)."""
    y, s = _arrays(labels, scores)
    flagged = s >= threshold
    return float(y[flagged].mean()) if flagged.any() else float("nan")


def recall_at(labels, scores, threshold: float) -> float:
    y, s = _arrays(labels, scores)
    return float((s[y] >= threshold).mean()) if y.any() else float("nan")


@dataclass(frozen=True)
class Performance:
    """The realized figures of one set of scored, labelled rows."""

    rows: int  # scored rows
    labelled_rows: int
    positives: int
    auc: float
    pr_auc: float
    brier: float
    ece: float
    precision_at_threshold: float
    recall_at_threshold: float
    threshold: float

    @property
    def label_coverage(self) -> float:
        return self.labelled_rows / self.rows if self.rows else 0.0

    def as_dict(self) -> dict[str, float]:
        """Every figure, rounded, NaN as None (JSON- and metadata-safe)."""
        figures = {**asdict(self), "label_coverage": self.label_coverage}
        return {k: (None if isinstance(v, float) and math.isnan(v) else round(v, 6) if isinstance(v, float) else v)
                for k, v in figures.items()}


def measure(labels, scores, threshold: float, rows: int | None = None) -> Performance:
    """Every figure for labelled rows; `rows` is how many were scored (for the label coverage)."""
    y, s = _arrays(labels, scores)
    return Performance(
        rows=len(y) if rows is None else rows, labelled_rows=len(y), positives=int(y.sum()),
        auc=roc_auc(y, s), pr_auc=pr_auc(y, s), brier=brier(y, s), ece=expected_calibration_error(y, s),
        precision_at_threshold=precision_at(y, s, threshold), recall_at_threshold=recall_at(y, s, threshold),
        threshold=threshold)


@dataclass(frozen=True)
class PerformanceVerdict:
    passed: bool
    reason: str


def judge(realized: Performance, expected: dict[str, float], margin: float, min_labelled: int,
          metrics: tuple[str, ...] = ("auc", "pr_auc")) -> PerformanceVerdict:
    """Fail when a realized figure falls below the version's evaluation-set figure by more than `margin`.

    Fewer than `min_labelled` labelled rows (or no positive) is not judged yet: labels are still
    arriving, and a figure from a handful of rows would cry wolf.
    """
    if realized.labelled_rows < min_labelled or realized.positives == 0:
        return PerformanceVerdict(True, f"not judged yet: {realized.labelled_rows} labelled row(s), "
                                  f"{realized.positives} positive(s) (< {min_labelled} labelled or no positive)")
    drops = []
    for name in metrics:
        want, got = expected.get(name), getattr(realized, name)
        if want is None or math.isnan(got):
            continue
        if got < want - margin:
            drops.append(f"{name} {got:.4f} < evaluation-set {want:.4f} - margin {margin:g}")
    if drops:
        return PerformanceVerdict(False, "; ".join(drops))
    compared = [n for n in metrics if expected.get(n) is not None]
    if not compared:
        return PerformanceVerdict(False, "the version has no evaluation-set figure to compare with "
                                  f"({', '.join(metrics)})")
    return PerformanceVerdict(True, ", ".join(f"{n} {getattr(realized, n):.4f} ≥ {expected[n]:.4f} - {margin:g}"
                                              for n in compared))
