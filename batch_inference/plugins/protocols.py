"""The three plug-in protocols, small and typed (no Dagster import).

- An **input adapter** turns a record batch of the features partition into model input: forward
  chunks (a float matrix slice, or a dict of token tensors) plus the rows it refuses, with a reason.
- An **output head** turns raw model output into output columns: a probability `score`, a `label`
  with `probs`, or a fixed-size `embedding`.
- A **model format** maps a registry format tag to a safe loader. The registry verifies the
  SHA-256 of every file of a version before the loader reads any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import torch


@dataclass
class LoadedArtifact:
    """What a model format's loader returns: the module to run, its config and any extras."""

    module: Any  # a torch.nn.Module whose forward takes one forward chunk
    config: dict
    extras: dict = field(default_factory=dict)  # e.g. {"tokenizer": ...}


@dataclass
class Prepared:
    """One read batch turned into model input.

    `chunks` are passed to the module one by one, in order. Their outputs, concatenated, are the
    kept rows in the order given by `order` (kept-row index of each output row); `None` means
    the input order. Rows the adapter refuses are listed with a reason and never reach the model.
    """

    record_ids: pa.Array  # the row keys of the kept rows (the batch's first column)
    chunks: list[Any]
    order: np.ndarray | None = None
    rejected_ids: list[str] = field(default_factory=list)
    rejected_reasons: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)  # counters summed over the partition

    @property
    def rows(self) -> int:
        return len(self.record_ids)


@runtime_checkable
class InputAdapter(Protocol):
    """Record batches in, forward chunks out. Runs in the reader thread: keep it free of torch
    compute that needs the device.

    Built with `cls(**adapter_params)`, or `cls.from_model(loaded, **adapter_params)` when the class
    has that classmethod. Params named `column` (one name) or `columns` (a list) name feature
    columns: they are checked against the feature SQL when definitions load. Worked example:
    docs/add-a-pipeline.md."""

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns of the features partition it reads. Each batch it gets holds the row key (the
        pipeline's `features.key`, default `input.key`) as its first column, then these."""
        ...

    def fingerprint(self) -> str:
        """A stable description of what it does (part of the checkpoint fingerprint)."""
        ...

    def prepare(self, batch: pa.RecordBatch, forward_rows: int) -> Prepared:
        """Turn one record batch into forward chunks of at most `forward_rows` rows (or a token cap)."""
        ...


@runtime_checkable
class OutputHead(Protocol):
    """Raw model output to output columns."""

    def fields(self) -> list[pa.Field]:
        """The output columns it writes, before the provenance columns."""
        ...

    def transform(self, raw: torch.Tensor) -> torch.Tensor:
        """On the device, after the forward pass: e.g. sigmoid, softmax, L2 normalisation."""
        ...

    def to_columns(self, values: np.ndarray) -> list[pa.Array]:
        """Host values (rows first) to Arrow columns matching `fields()`."""
        ...


@runtime_checkable
class ModelFormat(Protocol):
    """A registry format tag and its safe loader (nothing that can run code on load)."""

    tag: str

    def load(self, directory: Path, files: Mapping[str, str]) -> LoadedArtifact:
        """Load a version whose files (name -> verified SHA-256) lie in `directory`."""
        ...


@dataclass
class TrainedArtifact:
    """What a pipeline's model builder (training, or packaging a model from elsewhere) returns.

    `directory` holds every file of the version; the registry records each file's SHA-256.
    `evaluate`, if given, scores a loaded artifact on held-out data (higher is better), so a
    candidate is promoted only when it beats the champion.
    """

    directory: Path
    format: str
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    evaluate: Any = None  # Callable[[LoadedArtifact], float] | None


@dataclass
class TrainingRequest:
    """What the platform hands a model builder: the recent feature partitions and its params."""

    features: pa.Table | None
    window: list[str]
    params: Mapping[str, Any]
    workdir: Path
    key: str = "record_id"  # the features' row key column (the pipeline's `features.key`)
    labels: pa.Table | None = None  # late labels of the window's rows (key, label, labelled_at), if the pipeline has them
