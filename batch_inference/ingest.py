"""Reading landing files: file-level problems fail loudly, row-level defects go to quarantine.

The row rules are the pipeline's own input schema (pandera), the same one its schema check runs:
a row that would fail a row-level constraint is quarantined with the reason, so a bad row never
fails a day. File-level problems (missing column, lossy type, unreadable file) fail the file.

Every text value is validated as UTF-8 here, first: Parquet readers do not, and one invalid byte
would otherwise crash the key screen, fail the schema check, or poison every later DuckDB query
over the column. A row with an invalid value is quarantined naming the column and the value
(invalid bytes shown as backslash escapes), and nothing unvalidated is written to the lake.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from batch_inference.conform import TEXT_OF_BINARY, BadInputFileError, binary_as_text, conform_table
from batch_inference.quality.schema_validation import failing_rows

QUARANTINE_SCHEMA = pa.schema([
    ("record_id", pa.string()),
    ("reason", pa.string()),
    ("stage", pa.string()),
    ("original", pa.string()),
])

__all__ = ["OUT_OF_DAY", "QUARANTINE_SCHEMA", "BadInputFileError", "LandingFile", "escape_invalid_utf8",
           "open_landing_file", "quarantine_rows", "read_landing_file", "screen_batches", "screen_rows",
           "screen_utf8"]

OUT_OF_DAY = "outside the partition's day"  # in the reason of a row whose event time is not the file's day
INVALID_UTF8 = "invalid UTF-8"
_VALIDATE_ROWS = 8192  # text is validated in slices; only a slice that fails is decoded value by value
_SHOWN_CHARS = 60
BATCH_ROWS = 65_536  # landing rows conformed and screened at a time: ingest memory follows this, not the day


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _invalid_positions(chunk: pa.Array) -> list[int]:
    """Rows of a text array whose bytes are not valid UTF-8 (vectorised validation, slice by slice)."""
    bad: list[int] = []
    for start in range(0, len(chunk), _VALIDATE_ROWS):
        part = chunk.slice(start, _VALIDATE_ROWS)
        try:
            part.validate(full=True)
        except pa.ArrowInvalid:
            for i, value in enumerate(part.cast(_binary_of(part.type)).to_pylist()):
                if value is not None and not _is_utf8(value):
                    bad.append(start + i)
    return bad


def _binary_of(t: pa.DataType) -> pa.DataType:
    return {pa.large_string(): pa.large_binary(), pa.string_view(): pa.binary_view()}.get(t, pa.binary())


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def escape_invalid_utf8(column: pa.ChunkedArray | pa.Array) -> tuple[pa.ChunkedArray, np.ndarray]:
    """(column with each invalid UTF-8 value replaced by its backslash-escaped text, mask of those rows).

    A text column's other values are unchanged; a non-text column is returned as is. The escaped
    text names the bad value in a quarantine reason and lets the key be compared and stored.
    """
    column = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column], column.type)
    mask = np.zeros(len(column), dtype=bool)
    if not _is_text(column.type):
        return column, mask
    chunks, offset = [], 0
    for chunk in column.chunks:
        bad = _invalid_positions(chunk)
        if bad:
            values = chunk.cast(_binary_of(chunk.type)).to_pylist()
            for i in bad:
                values[i] = values[i].decode("utf-8", "backslashreplace")
                mask[offset + i] = True
            chunk = pa.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in values], chunk.type)
        chunks.append(chunk)
        offset += len(chunk)
    return pa.chunked_array(chunks, column.type), mask


def _shown(text: str) -> str:
    """A value for a message: quoted, invalid bytes as escapes, long text cut."""
    return "'" + (text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "...") + "'"


def screen_utf8(table: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """(table with invalid text values escaped, one reason per row or None) for every text column."""
    reasons = np.full(table.num_rows, None, dtype=object)
    for index, name in enumerate(table.column_names):
        escaped, bad = escape_invalid_utf8(table.column(index))
        if not bad.any():
            continue
        for row in np.flatnonzero(bad & (reasons == None)):  # noqa: E711 - elementwise
            reasons[row] = f"{name}: {INVALID_UTF8} in value {_shown(escaped[int(row)].as_py())}"
        table = table.set_column(index, table.field(index), escaped)
    return table, reasons


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


def _open_parquet(fs: pafs.FileSystem, path: str, root: str | None) -> pq.ParquetFile:
    _refuse_symlink(fs, path, root)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise BadInputFileError(f"landing file {path} does not exist")
    if info.size == 0:
        raise BadInputFileError(f"landing file {path} is empty (0 bytes), not a Parquet file")
    try:
        return pq.ParquetFile(fs.open_input_file(path), pre_buffer=False, buffer_size=1 << 20)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInputFileError(f"landing file {path} is not a readable Parquet file: {exc}") from None


@dataclass
class LandingFile:
    """An open landing file, read batch by batch, each batch conformed strictly to `schema`."""

    path: str
    parquet: pq.ParquetFile
    schema: pa.Schema  # the conformed schema every batch has

    @property
    def num_rows(self) -> int:
        return self.parquet.metadata.num_rows

    def batches(self, rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
        """Conformed batches of at most `rows` rows; a file problem names the file, as a whole read would."""
        reader = self.parquet.iter_batches(batch_size=rows)
        while True:
            try:
                batch = next(reader)
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError) as exc:
                raise BadInputFileError(f"landing file {self.path} is not a readable Parquet file: {exc}") from None
            yield conform_table(pa.Table.from_batches([batch]), self.schema, self.path)

    def close(self) -> None:
        self.parquet.close(force=True)


def open_landing_file(fs: pafs.FileSystem, path: str, schema: pa.Schema, root: str | None = None) -> LandingFile:
    """Open a landing file for streaming; file-level problems (missing column, a type that cannot be
    converted) fail here, before a row is read."""
    parquet = _open_parquet(fs, path, root)
    conform_table(parquet.schema_arrow.empty_table(), schema, path)
    return LandingFile(path, parquet, schema)


def read_landing_file(fs: pafs.FileSystem, path: str, schema: pa.Schema, root: str | None = None) -> pa.Table:
    """Read a whole landing file and conform it strictly to `schema`, naming the file and problem on failure."""
    parquet = _open_parquet(fs, path, root)
    try:
        table = parquet.read()
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInputFileError(f"landing file {path} is not a readable Parquet file: {exc}") from None
    finally:
        parquet.close(force=True)
    return conform_table(table, schema, path)


def screen_rows(table: pa.Table, rules, stage: str, key: str = "record_id",
                event_time: str | None = None, date: str | None = None,
                tolerance: dt.timedelta = dt.timedelta(0),
                later: np.ndarray | None = None) -> tuple[pa.Table, pa.Table]:
    """Split rows into (valid, quarantined-with-reason); every input row lands in exactly one.

    In order: text that is not valid UTF-8 (any text column), the key (null, empty, a later
    duplicate; the first occurrence is kept), the event time (outside the partition's day by more
    than `tolerance`), then the row rules of `rules`, a pandera DataFrameModel. With `later` (a batch
    of a file: the mask of its rows whose key repeats an earlier row of the file, see `screen_batches`),
    duplicates are taken from it instead of found among the batch's rows.
    """
    table, reasons = screen_utf8(table)

    def flag(mask: np.ndarray, reason: str) -> None:
        reasons[(reasons == None) & mask] = reason  # noqa: E711 - elementwise

    ids = table.column(key)
    null_id = pc.is_null(ids).to_numpy(zero_copy_only=False)
    flag(null_id, f"null {key}")
    if pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type):
        empty = pc.equal(pc.utf8_length(pc.fill_null(ids, "")), 0).to_numpy(zero_copy_only=False)
        flag(empty & ~null_id, f"empty {key}")
    live = np.flatnonzero(reasons == None)  # noqa: E711 - duplicates among rows not yet quarantined
    live_ids = pd.Series(ids.take(pa.array(live)).to_numpy(zero_copy_only=False) if later is None else [],
                         dtype=object)
    dup = np.zeros(len(reasons), dtype=bool)
    dup[live[live_ids.duplicated().to_numpy()] if later is None else live[later[live]]] = True
    flag(dup, f"duplicate {key}")
    if event_time is not None and date is not None:
        day = dt.datetime.combine(dt.date.fromisoformat(date), dt.time(), tzinfo=dt.UTC)
        low, high = day - tolerance, day + dt.timedelta(days=1) + tolerance
        times = table.column(event_time)
        unit = times.type.unit if pa.types.is_timestamp(times.type) else "us"
        bounds = (pa.scalar(low, pa.timestamp(unit, tz="UTC")), pa.scalar(high, pa.timestamp(unit, tz="UTC")))
        outside = pc.or_(pc.less(times, bounds[0]), pc.greater_equal(times, bounds[1]))
        flag(pc.fill_null(outside, False).to_numpy(zero_copy_only=False),
             f"{event_time} {OUT_OF_DAY} {date} (tolerance {tolerance})")
    if rules is not None:
        candidates = np.flatnonzero(reasons == None)  # noqa: E711
        rows, why = failing_rows(rules, table.take(pa.array(candidates)))
        if len(rows):
            reasons[candidates[rows]] = why
    bad = reasons != None  # noqa: E711
    valid = table.filter(pa.array(~bad))
    return valid, quarantine_rows(table.filter(pa.array(bad)), reasons[bad].tolist(), stage, key)


def _live_keys(table: pa.Table, key: str, first_row: int) -> pa.Table:
    """(row, key) of the rows whose key may be judged for duplicates: valid UTF-8 in every text column, a
    key neither null nor empty (the rows `screen_rows` compares keys among)."""
    table, reasons = screen_utf8(table)
    ids = table.column(key)
    live = (reasons == None) & ~pc.is_null(ids).to_numpy(zero_copy_only=False)  # noqa: E711
    if pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type):
        live &= pc.fill_null(pc.greater(pc.utf8_length(ids), 0), False).to_numpy(zero_copy_only=False)
    rows = np.arange(first_row, first_row + table.num_rows, dtype=np.int64)
    return pa.table({"row": rows[live], "key": ids.filter(pa.array(live))})


def later_duplicates(landing: LandingFile, key: str, rows: int = BATCH_ROWS) -> np.ndarray:
    """Sorted row numbers of the file's rows whose key repeats an earlier judged row's: a first pass writes
    the keys to a temporary file and DuckDB finds the repeats in bounded memory (spilling to disk)."""
    from batch_inference.bounded_duckdb import bounded_connection, quoted

    with tempfile.TemporaryDirectory(prefix="bi-keys-") as tmp:
        path, writer, first_row = os.path.join(tmp, "keys.parquet"), None, 0
        for batch in landing.batches(rows):
            keys = _live_keys(batch, key, first_row)
            first_row += batch.num_rows
            writer = writer or pq.ParquetWriter(path, keys.schema)
            writer.write_table(keys)
        if writer is None:
            return np.zeros(0, np.int64)
        writer.close()
        with bounded_connection() as con:
            keys = f"read_parquet({quoted(path)})"
            sql = (f"SELECT k.row FROM {keys} AS k JOIN (SELECT key, min(row) AS first FROM {keys} "  # noqa: S608
                   "GROUP BY key HAVING count(*) > 1) AS d USING (key) WHERE k.row > d.first ORDER BY k.row")
            found = con.execute(sql).fetchnumpy()["row"]
    return np.asarray(found, dtype=np.int64)


def screen_batches(landing: LandingFile, rules, stage: str, key: str = "record_id",
                   event_time: str | None = None, date: str | None = None,
                   tolerance: dt.timedelta = dt.timedelta(0),
                   rows: int = BATCH_ROWS) -> Iterator[tuple[pa.Table, pa.Table]]:
    """`screen_rows` over a landing file, batch by batch, one (valid, quarantined) pair each: the same split
    as one `screen_rows` over the whole file (a key repeated in a later batch is a duplicate), in memory
    that does not grow with the file. Two passes: the keys first (`later_duplicates`), then the rows."""
    repeats, first_row = later_duplicates(landing, key, rows), 0
    for batch in landing.batches(rows):
        numbers = np.arange(first_row, first_row + batch.num_rows, dtype=np.int64)
        first_row += batch.num_rows
        yield screen_rows(batch, rules, stage, key=key, event_time=event_time, date=date, tolerance=tolerance,
                          later=np.isin(numbers, repeats))


def quarantine_rows(rows: pa.Table, reasons: list[str], stage: str, key: str = "record_id") -> pa.Table:
    """Quarantine records that keep each row's original values as JSON (times as Arrow prints them, so a
    timestamp outside Python's years 1..9999 is kept too)."""
    printable = rows
    for index, field in enumerate(rows.schema):
        if pa.types.is_temporal(field.type):
            printable = printable.set_column(index, field.name, rows.column(index).cast(pa.string()))
    originals = [json.dumps(row, default=str, allow_nan=True) for row in printable.to_pylist()]
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


def write_landing_ids(fs: pafs.FileSystem, path: str, key: str, target: str) -> str:
    """Copy the key column of a landing file to the local Parquet file `target` (one text column `record_id`,
    each value as `read_landing_ids` gives it), row group by row group; returns `target`."""
    schema = pa.schema([("record_id", pa.string())])
    with fs.open_input_file(path) as handle, pq.ParquetWriter(target, schema) as writer:
        parquet = pq.ParquetFile(handle, pre_buffer=False, buffer_size=1 << 20)
        for group in range(parquet.num_row_groups):
            ids = _landing_key_text(parquet.read_row_group(group, columns=[key]).column(key))
            writer.write_table(pa.table({"record_id": ids}, schema=schema))
    return target


def _landing_key_text(ids: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(ids.type):
        ids = ids.cast(ids.type.value_type)
    if ids.type in TEXT_OF_BINARY:
        ids = binary_as_text(ids)
    return escape_invalid_utf8(ids)[0].cast(pa.string())


def read_landing_ids(fs: pafs.FileSystem, path: str, key: str = "record_id") -> pa.ChunkedArray:
    """Only the key column of a landing file (for completeness accounting), as strings; an invalid
    UTF-8 key is escaped exactly as its quarantine record names it."""
    with fs.open_input_file(path) as handle:
        ids = pq.read_table(handle, columns=[key]).column(key)
    return _landing_key_text(ids)
