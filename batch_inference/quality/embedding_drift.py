"""Drift of a day of text embeddings against the reference recorded with the model version.

Two metrics, each with thresholds that grow for small samples, so a quiet day is not an alarm:

- **centroid cosine distance**: 1 - cos(mean of the day's normalised embeddings, the reference
  centroid). With no drift it is sampling noise of both means, which scales as
  (1/rows + 1/reference rows) (the distance is quadratic in the means' error). The reference
  records that noise at a fixed size by bootstrap (day-sized resamples of the reference), so the
  thresholds for a day are `max(floor, multiplier x q99 noise scaled to its size)`: derived from
  the reference's own spread, with an absolute floor for the day-to-day variation (topic mix)
  that iid resampling cannot see.
- **text length PSI** over the reference's quantile bins: the usual 0.1 / 0.25 bands, raised to
  the 99.9th percentile of PSI's null distribution (chi-square, k - 1 degrees of freedom, times
  1/rows + 1/reference rows) when a day is too small for them (a day's warning should be rare
  noise: one day in a thousand, per metric). Counts get half a pseudo-count per bin, so an
  empty bin in a small day does not explode the log ratio.

The centroid is the model's output: its ALERT blocks the day. The text length is an input: it warns
at most, unless it is declared critical (`length_critical`), as the platform's drift policy has it.

A day below `min_rows` rows is still compared, with the thresholds of its own size (they widen as
1/rows), but never blocks: it WARNs if a metric is beyond them, else it is "insufficient_sample"
and passes, with the metrics and their thresholds in the table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from batch_inference.quality.drift import psi

OK, WARN, ALERT, INSUFFICIENT = "ok", "warn", "alert", "insufficient_sample"
REFERENCE_KIND = "batch_inference.embedding_drift.v1"
_RANK = {OK: 0, INSUFFICIENT: 0, WARN: 1, ALERT: 2}


@dataclass(frozen=True)
class EmbeddingDriftThresholds:
    """Defaults calibrated on generated daily texts (see the tests)."""

    min_rows: int = 100
    noise_warn: float = 4.0     # x the q99 bootstrap distance at the day's size
    noise_alert: float = 10.0
    cosine_warn_floor: float = 0.02
    cosine_alert_floor: float = 0.05
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    psi_noise_alert: float = 2.0  # alert band when the day is small: x the q99.9 null PSI


@dataclass
class MetricRow:
    metric: str
    value: float
    warn: float
    alert: float
    status: str
    role: str = "output"  # output (blocks) or feature (warns unless critical)


@dataclass
class EmbeddingDriftReport:
    status: str
    rows: int
    metrics: list[MetricRow] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "rows": self.rows, "metrics": [asdict(m) for m in self.metrics]}

    def as_markdown(self) -> str:
        lines = ["| metric | role | value | warn | alert | status |", "|---|---|---:|---:|---:|---|"]
        lines += [f"| {m.metric} | {m.role} | {m.value:.4f} | {m.warn:.4f} | {m.alert:.4f} | {m.status} |"
                  for m in self.metrics]
        return "\n".join(lines)


def embedding_matrix(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A fixed-size (or plain) list column of floats to a (rows x dimension) float32 matrix."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if len(column) == 0:
        return np.zeros((0, 0), np.float32)
    if column.null_count:
        column = column.filter(column.is_valid())
    if len(column) == 0:
        return np.zeros((0, 0), np.float32)
    dim = column.type.list_size if pa.types.is_fixed_size_list(column.type) else len(column[0].as_py())
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(-1, dim)


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.clip(norms, 1e-12, None)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cos(a, b) for two vectors (0 when either is zero)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return 0.0
    return float(1.0 - np.dot(a, b) / (na * nb))


def _length_bins(lengths: np.ndarray, bins: int) -> dict[str, list[float]]:
    lengths = lengths[np.isfinite(lengths)]
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, bins + 1)[1:-1])) if len(lengths) else np.zeros(0)
    counts = np.bincount(np.searchsorted(edges, lengths, side="right"), minlength=len(edges) + 1)
    return {"edges": edges.tolist(), "proportions": (counts / max(1, len(lengths))).tolist(),
            "rows": int(len(lengths))}


def chi2_quantile(dof: int, z: float = 3.09) -> float:
    """Wilson-Hilferty approximation of a chi-square quantile (z = 3.09: the 99.9th percentile)."""
    k = max(1, int(dof))
    return float(k * (1 - 2 / (9 * k) + z * np.sqrt(2 / (9 * k))) ** 3)


def build_reference(embeddings: np.ndarray, text_lengths: np.ndarray, *, day_rows: int | None = None,
                    bins: int = 10, bootstrap: int = 200, seed: int = 0) -> dict[str, Any]:
    """The reference of a model version: centroid, bootstrap noise of a day's distance, length bins.

    `day_rows` is the size of the resamples (a typical day; default: half the reference, at
    most 5,000). Resampling is with replacement, as a day is a fresh draw of the population.
    """
    x = _normalise(embeddings)
    if len(x) < 2:
        raise ValueError(f"need at least 2 embeddings for a drift reference, got {len(x)}")
    centroid = x.mean(axis=0)
    m = int(day_rows) if day_rows else min(5_000, len(x) // 2)
    m = max(1, min(m, len(x)))
    rng = np.random.default_rng(seed)
    distances = np.array([cosine_distance(x[rng.integers(0, len(x), size=m)].mean(axis=0), centroid)
                          for _ in range(bootstrap)])
    q = np.quantile(distances, [0.5, 0.9, 0.99])
    return {
        "kind": REFERENCE_KIND,
        "rows": int(len(x)),
        "dimension": int(x.shape[1]),
        "centroid": centroid.astype(np.float32).tolist(),
        "centroid_norm": float(np.linalg.norm(centroid)),
        "day_rows": m,
        "noise": {"rows": m, "bootstrap": int(bootstrap), "q50": float(q[0]), "q90": float(q[1]),
                  "q99": float(q[2]), "max": float(distances.max())},
        "text_length": _length_bins(np.asarray(text_lengths, dtype=np.float64), bins),
    }


def _status(value: float, warn: float, alert: float) -> str:
    return ALERT if value > alert else WARN if value > warn else OK


def compare_day(reference: dict[str, Any], embeddings: np.ndarray, text_lengths: np.ndarray | None = None,
                thresholds: EmbeddingDriftThresholds | None = None, *,
                length_critical: bool = False) -> EmbeddingDriftReport:
    """Drift of one day's embeddings (and text lengths) against `reference`; see the module docstring."""
    t = thresholds or EmbeddingDriftThresholds()
    if reference.get("kind") != REFERENCE_KIND:
        raise ValueError(f"not an embedding drift reference: kind={reference.get('kind')!r}")
    x = _normalise(embeddings) if len(embeddings) else np.zeros((0, reference["dimension"]))
    rows = len(x)
    if rows == 0:
        return EmbeddingDriftReport(INSUFFICIENT, rows, [
            MetricRow("rows", float(rows), float(t.min_rows), float(t.min_rows), INSUFFICIENT)])
    if x.shape[1] != reference["dimension"]:
        raise ValueError(f"embedding dimension {x.shape[1]} != reference's {reference['dimension']}")
    ref_rows = int(reference["rows"])
    scale = 1.0 / rows + 1.0 / ref_rows
    # The bootstrap distances are at variance 1/m (resample vs its own population's mean).
    noise = reference["noise"]["q99"] * reference["noise"]["rows"] * scale
    warn = max(t.cosine_warn_floor, t.noise_warn * noise)
    alert = max(t.cosine_alert_floor, t.noise_alert * noise, warn)
    distance = cosine_distance(x.mean(axis=0), np.asarray(reference["centroid"], dtype=np.float64))
    metrics = [MetricRow("centroid_cosine_distance", distance, warn, alert, _status(distance, warn, alert))]
    if text_lengths is not None and reference.get("text_length", {}).get("proportions"):
        bins = reference["text_length"]
        null_q99 = chi2_quantile(len(bins["proportions"]) - 1) * scale
        p_warn = max(t.psi_warn, null_q99)
        p_alert = max(t.psi_alert, t.psi_noise_alert * null_q99)
        value = psi(bins, np.asarray(text_lengths, dtype=np.float64), pseudo_count=0.5)  # Jeffreys-smoothed
        status = _status(value, p_warn, p_alert)
        if status == ALERT and not length_critical:  # an input: warns, unless declared critical
            status = WARN
        metrics.append(MetricRow("text_length_psi", value, p_warn, p_alert, status,
                                 role="critical" if length_critical else "feature"))
    status = max((m.status for m in metrics), key=_RANK.__getitem__)
    if rows < t.min_rows:  # a small day: judged at its size, never blocks
        status = WARN if status in (WARN, ALERT) else INSUFFICIENT
        metrics.append(MetricRow("rows", float(rows), float(t.min_rows), float(t.min_rows), status, role="sample"))
    return EmbeddingDriftReport(status, rows, metrics)


def compare_tables(reference: dict[str, Any], embeddings: pa.Table, features: pa.Table | None = None,
                   thresholds: EmbeddingDriftThresholds | None = None, *, embedding_column: str = "embedding",
                   length_column: str = "text_length", key: str = "record_id",
                   length_critical: bool = False) -> EmbeddingDriftReport:
    """`compare_day` over a day's output partition and (optionally) its features partition.

    Text lengths are taken from the feature rows that were embedded (joined on the row key `key`).
    """
    matrix = embedding_matrix(embeddings.column(embedding_column))
    lengths = None
    if features is not None and length_column in features.column_names:
        import pyarrow.compute as pc

        kept = pc.is_in(features.column(key), value_set=embeddings.column(key).combine_chunks())
        lengths = features.filter(kept).column(length_column).to_numpy(zero_copy_only=False)
    return compare_day(reference, matrix, lengths, thresholds, length_critical=length_critical)


def drift_check(p: Any, reference: dict[str, Any], store: Any, date: str, thresholds: Any,
                length_column: str | None = None) -> tuple[str, dict]:
    """The platform's custom drift-check hook (`quality.drift_check` in a pipeline's YAML).

    Reads the day's vectors (the output head's column) and, if `length_column` is given
    (`quality.drift_params` in the YAML), the input lengths from the features, through the
    pipeline's lake `store`; `thresholds` (the platform's DriftThresholds) lends its `min_rows` and
    PSI bands. `quality.features.<length_column>` may exclude the length or make it critical.
    """
    embedding_column = p.head.fields()[0].name
    t = EmbeddingDriftThresholds(
        min_rows=int(getattr(thresholds, "min_rows", EmbeddingDriftThresholds.min_rows)),
        psi_warn=float(getattr(thresholds, "psi_warn", EmbeddingDriftThresholds.psi_warn)),
        psi_alert=float(getattr(thresholds, "psi_alert", EmbeddingDriftThresholds.psi_alert)))
    key = p.row_key
    setting = p.spec.quality.features.get(length_column) if length_column else None  # per-feature YAML
    if setting is not None and setting.exclude:
        length_column = None
    embeddings = store.read(p.spec.scoring.asset, date, [key, embedding_column])
    features = None
    if length_column and length_column in store.schema(p.spec.features.asset, date).names:
        features = store.read(p.spec.features.asset, date, [key, length_column])
    report = compare_tables(reference, embeddings, features, t, embedding_column=embedding_column,
                            length_column=length_column or "length", key=key,
                            length_critical=bool(setting is not None and setting.critical))
    table: Any = report.as_markdown()
    try:
        import dagster as dg

        table = dg.MetadataValue.md(table)
    except ImportError:  # pragma: no cover - the platform always has dagster
        pass
    metadata: dict[str, Any] = {"rows": report.rows, "drift_table": table}
    for m in report.metrics:
        metadata[m.metric] = round(m.value, 6)
        metadata[f"{m.metric}_alert_threshold"] = round(m.alert, 6)
    return report.status, metadata
