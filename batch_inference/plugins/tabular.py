"""The tabular input adapter: float feature columns to a float32 matrix, cut into forward chunks."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from batch_inference.plugins.protocols import LoadedArtifact, Prepared


def feature_matrix(batch: pa.RecordBatch, columns: tuple[str, ...]) -> np.ndarray:
    """Columns to a (rows x columns) float32 matrix without pandas (vstack, then transpose)."""
    cols = []
    for name in columns:
        column = batch.column(name)
        if column.null_count:
            column = column.fill_null(float("nan"))
        cols.append(column.to_numpy(zero_copy_only=False))
    return np.vstack(cols).astype(np.float32, copy=False).T


class FloatMatrix:
    """Numeric columns to a float32 matrix; rows with a null or non-finite value are refused.

    The columns come from the model's config (`features`), so the model says what it reads.
    """

    def __init__(self, columns: tuple[str, ...] | list[str]) -> None:
        if not columns:
            raise ValueError("FloatMatrix needs at least one column")
        self._columns = tuple(str(c) for c in columns)

    @classmethod
    def from_model(cls, loaded: LoadedArtifact, columns: list[str] | None = None) -> FloatMatrix:
        """The model's feature list, unless `columns` overrides it."""
        return cls(columns or loaded.config["features"])

    @property
    def columns(self) -> tuple[str, ...]:
        return self._columns

    def fingerprint(self) -> str:
        return "float_matrix:" + ",".join(self._columns)

    def prepare(self, batch: pa.RecordBatch, forward_rows: int) -> Prepared:
        record_ids = batch.column(0)  # the row key
        x = feature_matrix(batch, self._columns)
        finite = np.isfinite(x).all(axis=1)
        rejected_ids: list[str] = []
        reasons: list[str] = []
        if not finite.all():
            bad = np.flatnonzero(~finite)
            rejected_ids = record_ids.take(pa.array(bad)).cast(pa.string()).to_pylist()
            for row in bad:
                names = [self._columns[i] for i in np.flatnonzero(~np.isfinite(x[row]))]
                reasons.append(f"non-finite feature(s): {', '.join(names)}")
            record_ids = record_ids.filter(pa.array(finite))
            x = np.ascontiguousarray(x[finite])
        step = max(1, forward_rows)
        chunks = [x[start:start + step] for start in range(0, len(x), step)]
        return Prepared(record_ids, chunks, None, rejected_ids, reasons)
