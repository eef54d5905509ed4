"""The reference distribution a model version records at training time, for drift checks later.

One entry per column (the score and each feature), JSON-serialisable:

- `n`: finite values it was built from (the sampling noise of the reference itself);
- `edges` / `proportions`: bins for PSI: quantile bins for continuous columns, one bin per value
  for columns with few distinct values;
- `percentiles` / `cdf`: the 0..100th percentiles and the reference's empirical CDF at each of
  them (exact also where a value is tied across many percentiles), for KS;
- `distinct`, `mode_share`: how discrete / tied the column is; `continuous`: whether KS applies;
- `importance`: |correlation| with the score, used to pick the features worth checking;
- `values` / `counts` (columns with at most CATEGORY_MAX_VALUES distinct values): each value and
  its count, for the per-value (categorical) test and to name values the reference never saw;
- `days` / `day_level` (references built from lake partitions, `partitions_reference`): how many
  days it pools and whether the column was constant within each of them (a day-level value such
  as a weekday, which a day can only be judged on as one draw).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import numpy as np

REFERENCE_BINS = 10
PERCENTILES = 101
FORMAT_VERSION = 3
# Up to this many distinct values a reference records each value and its count.
CATEGORY_MAX_VALUES = 64
# KS needs a continuous distribution: at least this many distinct values, and no single value
# holding more than this share of the rows (point masses make the KS statistic lumpy).
KS_MIN_DISTINCT = 50
KS_MAX_MODE_SHARE = 0.05
# Score and importance are computed on at most this many rows (as training always did).
SAMPLE_ROWS = 100_000


def column_reference(values: np.ndarray, bins: int = REFERENCE_BINS) -> dict:
    """The reference entry (bins, percentiles, CDF, tie statistics) of one column's values."""
    values = np.asarray(values, dtype=np.float64)
    values = np.sort(values[np.isfinite(values)])
    n = len(values)
    if n == 0:
        return {"version": FORMAT_VERSION, "n": 0, "edges": [], "proportions": [], "percentiles": [],
                "cdf": [], "distinct": 0, "mode_share": 0.0, "continuous": False}
    distinct, counts = np.unique(values, return_counts=True)
    if len(distinct) > bins:
        inner = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))[1:-1]
    else:  # a few distinct values (flags, counts): one bin per value, split at the midpoints
        inner = (distinct[:-1] + distinct[1:]) / 2
    per_bin = np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(inner) + 1)
    percentiles = np.quantile(values, np.linspace(0, 1, PERCENTILES))
    mode_share = float(counts.max() / n)
    per_value = ({"values": distinct.tolist(), "counts": counts.tolist()}
                 if len(distinct) <= CATEGORY_MAX_VALUES else {})
    return {
        "version": FORMAT_VERSION,
        "n": int(n),
        "edges": inner.tolist(),
        "proportions": (per_bin / n).tolist(),
        "percentiles": percentiles.tolist(),
        "cdf": (np.searchsorted(values, percentiles, side="right") / n).tolist(),
        "distinct": int(len(distinct)),
        "mode_share": round(mode_share, 6),
        "continuous": bool(len(distinct) >= KS_MIN_DISTINCT and mode_share <= KS_MAX_MODE_SHARE),
        **per_value,
    }


def partitions_reference(days: Sequence[np.ndarray], bins: int = REFERENCE_BINS) -> dict:
    """A reference entry pooled from one column's values on several past days (lake partitions).

    Records how many days it pools (`days`) and whether the column was constant within every one
    of them (`day_level`): then a day is one draw of the column, not `rows` draws.
    """
    finite = [np.asarray(d, dtype=np.float64) for d in days]
    finite = [d[np.isfinite(d)] for d in finite]
    finite = [d for d in finite if len(d)]
    pooled = np.concatenate(finite) if finite else np.zeros(0)
    day_level = bool(finite) and all(d.min() == d.max() for d in finite)
    return {**column_reference(pooled, bins), "days": len(finite), "day_level": day_level}


def _importance(column: np.ndarray, scores: np.ndarray) -> float:
    ok = np.isfinite(column) & np.isfinite(scores)
    if ok.sum() < 2 or column[ok].std() == 0 or scores[ok].std() == 0:
        return 0.0
    return round(float(abs(np.corrcoef(column[ok], scores[ok])[0, 1])), 6)


def build_reference(features: Mapping[str, np.ndarray], scores: np.ndarray, output_column: str,
                    bins: int = REFERENCE_BINS) -> dict[str, dict]:
    """The drift reference of a model version: the output column (`scores`) plus one entry per feature.

    `features` are the training rows' feature columns (all rows: bins and percentiles);
    `scores` the model's scores of the first rows (at most SAMPLE_ROWS are used), aligned
    with the first rows of every feature, which give each feature's importance.
    """
    scores = np.asarray(scores, dtype=np.float64)[:SAMPLE_ROWS]
    reference = {output_column: {**column_reference(scores, bins), "importance": 1.0}}
    for name, column in features.items():
        column = np.asarray(column, dtype=np.float64)
        reference[name] = {**column_reference(column, bins),
                           "importance": _importance(column[:len(scores)], scores[:len(column)])}
    return reference


def reference_problems(entry: object) -> list[str]:
    """Why a reference entry cannot be used for drift (empty list: usable)."""
    if not isinstance(entry, Mapping) or not entry:
        return ["empty reference entry"]
    problems = []
    edges, proportions = entry.get("edges"), entry.get("proportions")
    if not isinstance(edges, list) or not isinstance(proportions, list) or not proportions:
        problems.append("no PSI bins (edges/proportions)")
    elif len(proportions) != len(edges) + 1:
        problems.append(f"{len(edges)} edges for {len(proportions)} bins")
    elif not np.all(np.isfinite(proportions)) or abs(sum(proportions) - 1.0) > 1e-3:
        problems.append("bin proportions do not sum to 1")
    if entry.get("n") == 0:
        problems.append("built from 0 values")
    return problems


def same_weekday_dates(date: str, weeks: int) -> list[str]:
    """The same weekday in each of the `weeks` weeks before `date` (YYYY-MM-DD), newest first."""
    day = dt.date.fromisoformat(date)
    return [(day - dt.timedelta(weeks=k)).isoformat() for k in range(1, weeks + 1)]


def same_weekday_reference(store, asset: str, column: str, date: str, weeks: int,
                           fallback: dict | None) -> dict | None:
    """`column`'s reference from `asset`'s partitions of the same weekday over the last `weeks` weeks,
    read through a lake `store` (`exists`, `schema`, `read`); its `source` names the days.

    Partitions that are missing, or lack the column, are left out. With none left, `fallback` (the
    training reference) is returned with a `source` that says so, so the report shows it.
    """
    dates = [d for d in same_weekday_dates(date, weeks)
             if store.exists(asset, d) and column in store.schema(asset, d).names]
    if not dates:
        if fallback is None:
            return None
        return {**fallback, "source": f"training reference: no {asset} partition of the same weekday "
                                      f"in the last {weeks} week(s) yet"}
    days = [store.read(asset, d, [column]).column(column).to_numpy(zero_copy_only=False) for d in dates]
    return {**partitions_reference(days), "source": f"same weekday: {', '.join(dates)}"}
