"""Reading landing files: file-level errors fail loudly, row-level defects go to quarantine."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from batch_inference.generator import COUNTRIES, MERCHANT_CATEGORIES, TRANSACTION_SCHEMA

QUARANTINE_SCHEMA = pa.schema([
    ("record_id", pa.string()),
    ("reason", pa.string()),
    ("stage", pa.string()),
    ("original", pa.string()),
])


class BadInputFileError(ValueError):
    """A landing file that cannot be ingested at all; nothing is written for it."""


def read_landing_file(fs: pafs.FileSystem, path: str) -> pa.Table:
    """Read and type-check a landing file, naming the file and the problem on failure."""
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
    missing = [f.name for f in TRANSACTION_SCHEMA if f.name not in table.column_names]
    if missing:
        raise BadInputFileError(
            f"landing file {path} is missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(table.column_names)})"
        )
    columns = []
    for field in TRANSACTION_SCHEMA:
        column = table.column(field.name)
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise BadInputFileError(
                    f"landing file {path}: column {field.name!r} has type {column.type}, "
                    f"expected {field.type}"
                ) from None
        columns.append(column)
    return pa.table(columns, schema=TRANSACTION_SCHEMA)


def split_valid(table: pa.Table, stage: str = "transactions") -> tuple[pa.Table, pa.Table]:
    """Split rows into (valid, quarantined-with-reason). Every input row lands in exactly one."""
    n = table.num_rows
    reasons = np.full(n, None, dtype=object)

    def flag(mask: np.ndarray, reason: str) -> None:
        reasons[(reasons == None) & mask] = reason  # noqa: E711 - elementwise

    def null(name: str) -> np.ndarray:
        return pc.is_null(table.column(name)).to_numpy(zero_copy_only=False)

    record_id = table.column("record_id")
    flag(null("record_id"), "null record_id")
    flag(pc.equal(pc.utf8_length(pc.fill_null(record_id, "")), 0).to_numpy(zero_copy_only=False)
         & ~null("record_id"), "empty record_id")
    amount = table.column("amount")
    flag(null("amount"), "null amount")
    amount_np = pc.fill_null(amount, 0.0).to_numpy(zero_copy_only=False)
    flag(~np.isfinite(amount_np), "non-finite amount")
    flag(np.isfinite(amount_np) & ((amount_np < 0) | (amount_np > 1_000_000)), "amount out of range [0, 1000000]")
    category_ok = pc.is_in(table.column("merchant_category"), pa.array(MERCHANT_CATEGORIES))
    flag(~pc.fill_null(category_ok, False).to_numpy(zero_copy_only=False), "unknown merchant_category")
    for name in ("merchant_country", "card_country"):
        ok = pc.is_in(table.column(name), pa.array(COUNTRIES))
        flag(~pc.fill_null(ok, False).to_numpy(zero_copy_only=False), f"unknown {name}")
    for name in ("event_time", "customer_id", "card_present"):
        flag(null(name), f"null {name}")
    # Duplicates: the first occurrence of an id is kept, later ones are quarantined.
    ids = pd.Series(record_id.to_numpy(zero_copy_only=False), dtype=object)
    dup = ids.duplicated(keep="first").to_numpy() & ~null("record_id")
    flag(dup, "duplicate record_id")

    bad = reasons != None  # noqa: E711
    valid = table.filter(pa.array(~bad))
    return valid, quarantine_rows(table.filter(pa.array(bad)), reasons[bad].tolist(), stage)


def quarantine_rows(rows: pa.Table, reasons: list[str], stage: str) -> pa.Table:
    """Build quarantine records that keep each row's original values as JSON."""
    originals = [json.dumps(row, default=str, allow_nan=True) for row in rows.to_pylist()]
    ids = rows.column("record_id") if "record_id" in rows.column_names else pa.nulls(rows.num_rows, pa.string())
    return pa.table(
        {
            "record_id": ids.cast(pa.string()),
            "reason": pa.array(reasons, pa.string()),
            "stage": pa.array([stage] * rows.num_rows, pa.string()),
            "original": pa.array(originals, pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )


def read_landing_ids(fs: pafs.FileSystem, path: str) -> pa.ChunkedArray:
    """Only the record_id column of a landing file (for completeness accounting)."""
    with fs.open_input_file(path) as handle:
        return pq.read_table(handle, columns=["record_id"]).column("record_id").cast(pa.string())
