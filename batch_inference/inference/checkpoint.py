"""Checkpointed scoring of one partition: resume after a crash, commit exactly once.

The input's row groups are cut into chunks of about `checkpoint_rows` rows. Each chunk's output
is committed to the partition's staging folder (with its rejected rows) as soon as it is scored,
under a fingerprint of the input, the model version and the chunking. A rerun with the same
fingerprint reuses the committed chunks and scores only the rest; anything else starts fresh.
When every chunk exists, the partition is assembled and made visible in one atomic step, and the
staging folder is removed. Chunks start at row-group boundaries and the forward pass slices
each row group the same way, so scores are bit-identical whatever the resume point.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from batch_inference.inference.engine import (
    EngineResult,
    InferenceEngine,
    Provenance,
    RejectedRows,
    iter_batches,
)
from batch_inference.lake import Lake, crash_point
from batch_inference.tracing import span

FORMAT_VERSION = "checkpoint.v1"
FINGERPRINT_KEY = b"batch_inference.fingerprint"  # in the committed file's schema metadata
REJECTED_SCHEMA = pa.schema([("record_id", pa.string()), ("reason", pa.string())])


@dataclass
class CheckpointResult:
    engine: EngineResult
    resumed_rows: int
    chunks: int
    resumed_chunks: int
    input_sha256: str
    rejected: pa.Table
    reused: bool = False  # the committed partition already had this input, model and chunking


def plan_chunks(parquet_file: pq.ParquetFile, checkpoint_rows: int) -> list[list[int]]:
    """Consecutive row groups, grouped until each chunk holds at least `checkpoint_rows` rows."""
    chunks: list[list[int]] = []
    current: list[int] = []
    rows = 0
    for group in range(parquet_file.metadata.num_row_groups):
        current.append(group)
        rows += parquet_file.metadata.row_group(group).num_rows
        if rows >= checkpoint_rows:
            chunks.append(current)
            current, rows = [], 0
    if current or not chunks:
        chunks.append(current)
    return chunks


def fingerprint(input_sha256: str, model_key: dict, engine: str, checkpoint_rows: int) -> str:
    payload = json.dumps({"input": input_sha256, "model": model_key, "engine": engine,
                          "checkpoint_rows": checkpoint_rows, "format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def committed_fingerprint(lake: Lake, target: str, date: str) -> str | None:
    """The fingerprint a committed partition was scored under (None if absent or foreign)."""
    if not lake.exists(target, date):
        return None
    metadata = lake.schema(target, date).metadata or {}
    value = metadata.get(FINGERPRINT_KEY)
    return value.decode() if value else None


def score_partition(engine: InferenceEngine, lake: Lake, date: str, provenance: Provenance, model_key: dict,
                    read_batch_rows: int, checkpoint_rows: int, source: str = "features",
                    target: str = "predictions", progress=None, reuse_committed: bool = False,
                    shadow_target: str | None = None, shadow_provenance: Provenance | None = None) -> CheckpointResult:
    """Score `source/date` into `target/date` with checkpoints; returns what was done and reused.

    With a shadow model on the engine (`with_shadow`), its outputs of the same batches are committed
    to `shadow_target/date` beside the main output, chunk by chunk under the same checkpoints.

    `progress`, if given, is a `ProgressReporter`-like object with `advance(rows)`. With
    `reuse_committed` (a ranged backfill run resumed after a crash), a partition already committed
    under the same fingerprint is kept as it is, not scored again.
    """
    input_sha = lake.footer_digest(source, date)
    shadow = engine.shadow is not None and shadow_target is not None
    shadow_key = {"shadow": shadow_provenance.model_version} if shadow and shadow_provenance else {}
    fp = fingerprint(input_sha, {**model_key, **shadow_key}, engine.fingerprint(), checkpoint_rows)
    if reuse_committed and committed_fingerprint(lake, target, date) == fp and (
            not shadow or lake.exists(shadow_target, date)):
        rows = lake.num_rows(source, date)
        if progress is not None:
            progress.advance(rows)
        return CheckpointResult(EngineResult(device=str(engine.device)), rows, 0, 0, input_sha,
                                REJECTED_SCHEMA.empty_table(), reused=True)
    schema = engine.output_schema.with_metadata({FINGERPRINT_KEY: fp.encode()})
    staging_root = lake.staging_dir(target, date)
    staging = f"{staging_root}/{fp}"
    for other in set(lake.list_dirs(staging_root)) - {staging.rsplit("/", 1)[-1]}:
        lake.delete_dir(f"{staging_root}/{other}")  # another input or model: start fresh
    done = set(lake.list_files(staging))
    source_file = lake.parquet_file(source, date)
    chunks = plan_chunks(source_file, checkpoint_rows)
    columns = [engine.key, *engine.columns]  # the row key first: adapters take it as column 0
    total = EngineResult(device=str(engine.device))
    resumed_rows = resumed_chunks = 0
    for index, groups in enumerate(chunks):
        name = f"chunk-{index:05d}.parquet"
        rows = sum(source_file.metadata.row_group(g).num_rows for g in groups)
        if name in done and f"rejected-{index:05d}.parquet" in done and (
                not shadow or f"shadow-{index:05d}.parquet" in done):
            resumed_rows += rows
            resumed_chunks += 1
            if progress is not None:
                progress.advance(rows)
            continue
        rejected: list[RejectedRows] = []
        batches = iter_batches(source_file, read_batch_rows, columns, row_groups=groups)
        with span("chunk", chunk=index, rows=rows), contextlib.ExitStack() as writers:
            rej_writer = writers.enter_context(
                lake.atomic_writer(f"{staging}/rejected-{index:05d}.parquet", REJECTED_SCHEMA))
            shadow_writer = writers.enter_context(lake.atomic_writer(
                f"{staging}/shadow-{index:05d}.parquet", engine.shadow.output_schema)) if shadow else None
            writer = writers.enter_context(lake.atomic_writer(f"{staging}/{name}", schema))
            result = engine.run(batches, writer.write_batch, provenance, reject=rejected.append,
                                on_batch=progress.advance if progress is not None else None,
                                shadow_write=shadow_writer.write_batch if shadow_writer else None,
                                shadow_provenance=shadow_provenance)
            rej_writer.write_table(_rejected_table(rejected))
        total.add(result)
        crash_point(f"after-chunk-{index}")
        crash_point(f"{date}:after-chunk-{index}")
    with span("commit", chunks=len(chunks), resumed_chunks=resumed_chunks):
        if shadow:  # the shadow first: the main commit (which the checks and the gate follow) is last
            _concatenate(lake, staging, len(chunks), shadow_target, date, provenance.run_id,
                         engine.shadow.output_schema, prefix="shadow")
        rejected_all = _assemble(lake, staging, len(chunks), target, date, provenance.run_id, schema,
                                 rename_ok=resumed_chunks == 0)
    lake.delete_dir(staging_root)
    return CheckpointResult(total, resumed_rows, len(chunks), resumed_chunks, input_sha, rejected_all)


def _assemble(lake: Lake, staging: str, count: int, target: str, date: str, run_id: str,
              schema: pa.Schema, rename_ok: bool) -> pa.Table:
    """Commit the partition from its chunks in one atomic step; return the rejected rows.

    Every row of the committed partition carries the run id of the run that committed it (the
    one the ledger records), also for rows resumed from an interrupted run.
    """
    if lake.is_local and count == 1 and rename_ok:  # one fresh chunk is already the file: rename it
        lake.fs.create_dir(lake.partition_dir(target, date), recursive=True)
        lake.commit_file(f"{staging}/chunk-00000.parquet", lake.partition_file(target, date))
    else:
        _concatenate(lake, staging, count, target, date, run_id, schema)
    rejected = []
    for index in range(count):
        with lake.fs.open_input_file(f"{staging}/rejected-{index:05d}.parquet") as handle:
            rejected.append(pq.read_table(handle))
    return pa.concat_tables(rejected) if rejected else REJECTED_SCHEMA.empty_table()


def _concatenate(lake: Lake, staging: str, count: int, target: str, date: str, run_id: str,
                 schema: pa.Schema, prefix: str = "chunk") -> None:
    run_column = schema.get_field_index("run_id")
    with lake.writer(target, date, schema) as writer:
        for index in range(count):
            with lake.fs.open_input_file(f"{staging}/{prefix}-{index:05d}.parquet") as handle:
                for batch in pq.ParquetFile(handle).iter_batches(batch_size=65_536):
                    run_ids = pa.repeat(pa.scalar(run_id, pa.string()), batch.num_rows)
                    writer.write_batch(batch.set_column(run_column, "run_id", run_ids))


def _rejected_table(rejected: list[RejectedRows]) -> pa.Table:
    return pa.table({
        "record_id": pa.array([r for chunk in rejected for r in chunk.record_ids], pa.string()),
        "reason": pa.array([r for chunk in rejected for r in chunk.reasons], pa.string()),
    }, schema=REJECTED_SCHEMA)
