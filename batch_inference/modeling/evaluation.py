"""A pipeline's fixed, digested evaluation set, and every version's outputs on it.

The evaluation set is cut from the training window when the pipeline's first model is built
(rows chosen by a hash of their key, so the cut is reproducible) and stored in the lake:

    <lake>/<pipeline>/_evaluation_set/v<N>/part-0.parquet    the rows (features, labels if any)
    <lake>/<pipeline>/_evaluation_set/v<N>/manifest.json     SHA-256, rows, source window
    <lake>/<pipeline>/_evaluation_set/v<N>/outputs/model-v<M>.parquet   version M's outputs on it

Every read verifies the digest. A new evaluation set is a new `v<N+1>`; the old one stays, so a
comparison names the set it used. No Dagster import, no example names.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import zlib
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from batch_inference.lake import Lake, sha256_of
from batch_inference.validation import InvalidNameError

FOLDER = "_evaluation_set"  # "_": not a partitioned asset, no serving view
PART = "part-0.parquet"
MANIFEST = "manifest.json"
_VERSION_DIR = re.compile(r"^v(\d{1,6})$")


class EvaluationSetError(RuntimeError):
    """An evaluation set that is missing, modified after it was stored, or unusable."""


@dataclass(frozen=True)
class EvaluationSet:
    """One stored version of the evaluation set."""

    version: int
    uri: str
    sha256: str
    rows: int
    window: str
    created_at: str
    label_column: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def evaluation_mask(keys: pa.ChunkedArray | pa.Array, fraction: float, salt: str = "evaluation") -> np.ndarray:
    """Rows whose key hashes into the first `fraction` of 10,000 buckets: stable, reproducible."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"evaluation fraction must be in (0, 1), got {fraction}")
    cutoff = int(fraction * 10_000)
    return np.fromiter((zlib.crc32(f"{salt}:{k}".encode()) % 10_000 < cutoff for k in keys.to_pylist()),
                       dtype=bool, count=len(keys))


def split(table: pa.Table, key: str, fraction: float) -> tuple[pa.Table, pa.Table]:
    """(rows left for training, rows of the evaluation set); at least one row is held out."""
    mask = evaluation_mask(table.column(key), fraction)
    if table.num_rows and not mask.any():  # a tiny window: hold out the row that hashes lowest
        buckets = [zlib.crc32(f"evaluation:{k}".encode()) for k in table.column(key).to_pylist()]
        mask[int(np.argmin(buckets))] = True
    return table.filter(pa.array(~mask)), table.filter(pa.array(mask))


def without(table: pa.Table, key: str, evaluation: pa.Table) -> pa.Table:
    """`table` less every row whose key is in the evaluation set: training never sees them."""
    return table.filter(pc.invert(pc.is_in(table.column(key), value_set=evaluation.column(key))))


class EvaluationStore:
    """The evaluation sets of one pipeline's lake."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.base = f"{lake.root}/{FOLDER}"

    def _dir(self, version: int) -> str:
        return f"{self.base}/v{int(version)}"

    def versions(self) -> list[int]:
        found = []
        for name in self.lake.list_dirs(self.base):
            match = _VERSION_DIR.fullmatch(name)
            if match and self._exists(f"{self.base}/{name}/{MANIFEST}"):
                found.append(int(match.group(1)))
        return sorted(found)

    def _exists(self, path: str) -> bool:
        return self.lake.fs.get_file_info(path).type == pafs.FileType.File

    def latest(self) -> EvaluationSet | None:
        versions = self.versions()
        return self.get(versions[-1]) if versions else None

    def get(self, version: int) -> EvaluationSet:
        path = f"{self._dir(version)}/{MANIFEST}"
        try:
            with self.lake.fs.open_input_stream(path) as stream:
                record = json.loads(stream.read())
        except FileNotFoundError:
            raise EvaluationSetError(f"no evaluation set v{version} at {self.lake.uri_of(path)}") from None
        return EvaluationSet(**record)

    def create(self, table: pa.Table, window: str, label_column: str | None = None) -> EvaluationSet:
        """Store `table` as the next version; the manifest (written last) makes it visible."""
        if table.num_rows == 0:
            raise EvaluationSetError("refusing to store an empty evaluation set")
        if label_column is not None and label_column not in table.column_names:
            raise EvaluationSetError(f"the evaluation set has no label column {label_column!r}: "
                                     f"{table.column_names}")
        version = (self.versions() or [0])[-1] + 1
        final = f"{self._dir(version)}/{PART}"
        with self.lake.atomic_writer(final, table.schema) as writer:
            writer.write_table(table)
        record = EvaluationSet(version=version, uri=self.lake.uri_of(final), sha256=sha256_of(self.lake.fs, final),
                               rows=table.num_rows, window=window,
                               created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                               label_column=label_column)
        self._write_json(f"{self._dir(version)}/{MANIFEST}", record.as_dict())
        return record

    def _write_json(self, final: str, payload: dict) -> None:
        import os
        import tempfile

        fd, staging = tempfile.mkstemp(suffix=".json.tmp", dir=final.rsplit("/", 1)[0] if self.lake.is_local else None)
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, sort_keys=True)
        try:
            self.lake.commit_file(staging, final)
        finally:
            if os.path.exists(staging):
                os.remove(staging)

    def read(self, evaluation: EvaluationSet) -> pa.Table:
        """The rows, after checking the file still has the digest it was stored with."""
        path = f"{self._dir(evaluation.version)}/{PART}"
        found = sha256_of(self.lake.fs, path)
        if found != evaluation.sha256:
            raise EvaluationSetError(f"evaluation set v{evaluation.version} ({self.lake.uri_of(path)}): SHA-256 "
                                     f"mismatch, expected {evaluation.sha256}, found {found}; it was modified "
                                     "after it was stored, refusing to compare on it")
        with self.lake.fs.open_input_stream(path) as stream:
            return pq.read_table(io.BytesIO(stream.read()))

    # -- each version's outputs on the set --------------------------------------------------------

    def _outputs_path(self, evaluation: EvaluationSet, model_version: str) -> str:
        if not str(model_version).isdigit():
            raise InvalidNameError(f"invalid model version {model_version!r}: expected digits")
        return f"{self._dir(evaluation.version)}/outputs/model-v{model_version}.parquet"

    def write_outputs(self, evaluation: EvaluationSet, model_version: str, outputs: pa.Table) -> str:
        """Store a version's outputs on the set (`key` + output columns); returns their SHA-256."""
        final = self._outputs_path(evaluation, model_version)
        with self.lake.atomic_writer(final, outputs.schema) as writer:
            writer.write_table(outputs)
        return sha256_of(self.lake.fs, final)

    def read_outputs(self, evaluation: EvaluationSet, model_version: str, sha256: str | None = None) -> pa.Table | None:
        """A version's stored outputs on the set, or None if it was never scored on it."""
        path = self._outputs_path(evaluation, model_version)
        if not self._exists(path):
            return None
        if sha256 is not None and (found := sha256_of(self.lake.fs, path)) != sha256:
            raise EvaluationSetError(f"outputs of model v{model_version} on evaluation set v{evaluation.version}: "
                                     f"SHA-256 mismatch, expected {sha256}, found {found}")
        with self.lake.fs.open_input_stream(path) as stream:
            return pq.read_table(io.BytesIO(stream.read()))


def output_values(table: pa.Table, column: str) -> np.ndarray:
    """An output column as numpy: a vector for scores, a rows x dims matrix for fixed-size lists."""
    col = table.column(column).combine_chunks()
    if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
        if table.num_rows == 0:
            return np.zeros((0, 0), np.float32)
        return np.asarray(col.flatten().to_numpy(zero_copy_only=False)).reshape(table.num_rows, -1)
    return col.to_numpy(zero_copy_only=False)


def score_table(engine, table: pa.Table, read_batch_rows: int = 16_384) -> pa.Table:
    """Outputs of an `InferenceEngine` on an in-memory table: its row key + the head's columns, in order.

    Rows the adapter refuses are an error here: every row of an evaluation set must be scored.
    """
    from batch_inference.inference.engine import Provenance

    parts: list[pa.RecordBatch] = []
    source = table.select(list(dict.fromkeys([engine.key, *engine.columns])))
    engine.run(source.to_batches(max_chunksize=read_batch_rows), parts.append,
               Provenance("evaluation", "0", "evaluation"))
    names = [engine.key, *(f.name for f in engine.head.fields())]
    if not parts:
        return pa.table({n: pa.array([], engine.output_schema.field(n).type) for n in names})
    return pa.Table.from_batches(parts, schema=engine.output_schema).select(names)
