"""Reading landing files: file-level problems fail loudly, row-level defects go to quarantine.

The row rules are the pipeline's own input schema (pandera), the same one its schema check runs:
a row that would fail a row-level constraint is quarantined with the reason, so a bad row never
fails a day. File-level problems (missing column, lossy type, unreadable file) fail the file.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from batch_inference.conform import BadInputFileError, conform_table
from batch_inference.quality.schema_validation import failing_rows

QUARANTINE_SCHEMA = pa.schema([
    ("record_id", pa.string()),
    ("reason", pa.string()),
    ("stage", pa.string()),
    ("original", pa.string()),
])

__all__ = ["QUARANTINE_SCHEMA", "BadInputFileError", "quarantine_rows", "read_landing_file", "screen_rows"]


def _refuse_symlink(fs: pafs.FileSystem, path: str, root: str | None) -> None:
    """A landing entry that is a symlink, or resolves outside the landing root, is refused."""
    if not isinstance(fs, pafs.LocalFileSystem):
        return
    if os.path.islink(path):
        raise BadInputFileError(f"landing file {path} is a symbolic link; refusing to read it")
    if root is not None:
        real, real_root = os.path.realpath(path), os.path.realpath(root)
        if os.path.commonpath([real, real_root]) != real_root:
            raise BadInputFileError(f"landing file {path} resolves outside the landing root {root}")


def read_landing_file(fs: pafs.FileSystem, path: str, schema: pa.Schema, root: str | None = None) -> pa.Table:
    """Read a landing file and conform it strictly to `schema`, naming the file and problem on failure."""
    _refuse_symlink(fs, path, root)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise BadInputFileError(f"landing file {path} does not exist")
    if info.size == 0:
        raise BadInputFileError(f"landing file {path} is empty (0 bytes), not a Parquet file")
    try:
        with fs.open_input_file(path) as handle:
            table = pq.read_table(handle)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInputFileError(f"landing file {path} is not a readable Parquet file: {exc}") from None
    return conform_table(table, schema, path)


def screen_rows(table: pa.Table, rules, stage: str, key: str = "record_id",
                event_time: str | None = None, date: str | None = None,
                tolerance: dt.timedelta = dt.timedelta(0)) -> tuple[pa.Table, pa.Table]:
    """Split rows into (valid, quarantined-with-reason); every input row lands in exactly one.

    In order: the key (null, empty, a later duplicate; the first occurrence is kept), the event
    time (outside the partition's day by more than `tolerance`), then the row rules of `rules`,
    a pandera DataFrameModel.
    """
    n = table.num_rows
    reasons = np.full(n, None, dtype=object)

    def flag(mask: np.ndarray, reason: str) -> None:
        reasons[(reasons == None) & mask] = reason  # noqa: E711 - elementwise

    ids = table.column(key)
    null_id = pc.is_null(ids).to_numpy(zero_copy_only=False)
    flag(null_id, f"null {key}")
    if pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type):
        empty = pc.equal(pc.utf8_length(pc.fill_null(ids, "")), 0).to_numpy(zero_copy_only=False)
        flag(empty & ~null_id, f"empty {key}")
    dup = pd.Series(ids.to_numpy(zero_copy_only=False), dtype=object).duplicated(keep="first").to_numpy()
    flag(dup & ~null_id, f"duplicate {key}")
    if event_time is not None and date is not None:
        day = dt.datetime.combine(dt.date.fromisoformat(date), dt.time(), tzinfo=dt.UTC)
        low, high = day - tolerance, day + dt.timedelta(days=1) + tolerance
        times = table.column(event_time)
        unit = times.type.unit if pa.types.is_timestamp(times.type) else "us"
        bounds = (pa.scalar(low, pa.timestamp(unit, tz="UTC")), pa.scalar(high, pa.timestamp(unit, tz="UTC")))
        outside = pc.or_(pc.less(times, bounds[0]), pc.greater_equal(times, bounds[1]))
        flag(pc.fill_null(outside, False).to_numpy(zero_copy_only=False),
             f"{event_time} outside the partition's day {date} (tolerance {tolerance})")
    if rules is not None:
        candidates = np.flatnonzero(reasons == None)  # noqa: E711
        rows, why = failing_rows(rules, table.take(pa.array(candidates)))
        if len(rows):
            reasons[candidates[rows]] = why
    bad = reasons != None  # noqa: E711
    valid = table.filter(pa.array(~bad))
    return valid, quarantine_rows(table.filter(pa.array(bad)), reasons[bad].tolist(), stage, key)


def quarantine_rows(rows: pa.Table, reasons: list[str], stage: str, key: str = "record_id") -> pa.Table:
    """Quarantine records that keep each row's original values as JSON."""
    originals = [json.dumps(row, default=str, allow_nan=True) for row in rows.to_pylist()]
    ids = rows.column(key) if key in rows.column_names else pa.nulls(rows.num_rows, pa.string())
    return pa.table(
        {
            "record_id": ids.cast(pa.string()),
            "reason": pa.array(reasons, pa.string()),
            "stage": pa.array([stage] * rows.num_rows, pa.string()),
            "original": pa.array(originals, pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )


def read_landing_ids(fs: pafs.FileSystem, path: str, key: str = "record_id") -> pa.ChunkedArray:
    """Only the key column of a landing file (for completeness accounting), as strings."""
    with fs.open_input_file(path) as handle:
        return pq.read_table(handle, columns=[key]).column(key).cast(pa.string())
