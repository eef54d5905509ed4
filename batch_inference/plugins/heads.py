"""Output heads: a probability `score`, a regression `prediction`, a `label` with `probs`, or an
L2-normalised `embedding`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import torch


class Probability:
    """One logit per row to a probability in [0, 1], written as `score` (float32)."""

    def __init__(self, column: str = "score") -> None:
        self.column = column

    def fields(self) -> list[pa.Field]:
        return [pa.field(self.column, pa.float32())]

    def transform(self, raw: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.sigmoid(raw.float().reshape(len(raw), -1)[:, 0])

    def to_columns(self, values: np.ndarray) -> list[pa.Array]:
        return [pa.array(values.astype(np.float32, copy=False).reshape(-1), pa.float32())]


class Regression:
    """One value per row on the model's own scale, written as `prediction` (float32).

    Optional `min_value` / `max_value` clip it (e.g. 0 for a demand that cannot be negative).
    """

    def __init__(self, column: str = "prediction", min_value: float | None = None,
                 max_value: float | None = None) -> None:
        if min_value is not None and max_value is not None and min_value > max_value:
            raise ValueError(f"Regression head: min_value {min_value} is above max_value {max_value}")
        self.column, self.min_value, self.max_value = column, min_value, max_value

    def fields(self) -> list[pa.Field]:
        return [pa.field(self.column, pa.float32())]

    def transform(self, raw: torch.Tensor) -> torch.Tensor:
        values = raw.float().reshape(len(raw), -1)[:, 0]
        if self.min_value is None and self.max_value is None:
            return values
        return values.clamp(min=self.min_value, max=self.max_value)

    def to_columns(self, values: np.ndarray) -> list[pa.Array]:
        return [pa.array(values.astype(np.float32, copy=False).reshape(-1), pa.float32())]


class Classes:
    """Class logits to the arg-max `label` (a class name) and the softmax `probs` (float32 list)."""

    def __init__(self, labels: list[str], label_column: str = "label", probs_column: str = "probs") -> None:
        if not labels:
            raise ValueError("Classes head needs at least one label name")
        self.labels = [str(x) for x in labels]
        self.label_column, self.probs_column = label_column, probs_column

    def fields(self) -> list[pa.Field]:
        k = len(self.labels)
        return [pa.field(self.label_column, pa.string()), pa.field(self.probs_column, pa.list_(pa.float32(), k))]

    def transform(self, raw: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.softmax(raw.float(), dim=-1)

    def to_columns(self, values: np.ndarray) -> list[pa.Array]:
        values = values.astype(np.float32, copy=False).reshape(len(values), len(self.labels))
        names = np.asarray(self.labels, dtype=object)[values.argmax(axis=1)] if len(values) else []
        flat = pa.array(values.reshape(-1), pa.float32())
        return [pa.array(names, pa.string()),
                pa.FixedSizeListArray.from_arrays(flat, len(self.labels))]


class Embedding:
    """Vectors to a fixed-size, L2-normalised `embedding` list of float32."""

    def __init__(self, dimension: int, column: str = "embedding", normalize: bool = True) -> None:
        if dimension <= 0:
            raise ValueError(f"embedding dimension must be positive, got {dimension}")
        self.dimension, self.column, self.normalize = int(dimension), column, normalize

    def fields(self) -> list[pa.Field]:
        return [pa.field(self.column, pa.list_(pa.float32(), self.dimension))]

    def transform(self, raw: torch.Tensor) -> torch.Tensor:
        import torch

        raw = raw.float()
        return torch.nn.functional.normalize(raw, p=2.0, dim=-1) if self.normalize else raw

    def to_columns(self, values: np.ndarray) -> list[pa.Array]:
        values = np.ascontiguousarray(values, dtype=np.float32).reshape(len(values), self.dimension)
        return [pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), self.dimension)]
