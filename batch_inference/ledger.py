"""The provenance ledger: one Parquet record per partition materialization, queried via DuckDB.

Records live at `lake/ledger/date=D/run-<run_id>.parquet` (append-only: every materialization
adds one), so parallel runs never contend for a DuckDB writer lock; the warehouse's `ledger`
view reads them all.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass

import pyarrow as pa

from batch_inference.lake import Lake

LEDGER_SCHEMA = pa.schema([
    ("partition", pa.string()),
    ("run_id", pa.string()),
    ("model_name", pa.string()),
    ("model_version", pa.string()),
    ("artifact_sha256", pa.string()),
    ("input_sha256", pa.string()),
    ("output_sha256", pa.string()),
    ("rows_in", pa.int64()),
    ("rows_scored", pa.int64()),
    ("rows_quarantined", pa.int64()),
    ("rows_resumed", pa.int64()),
    ("started_at", pa.timestamp("us", tz="UTC")),
    ("ended_at", pa.timestamp("us", tz="UTC")),
    ("device", pa.string()),
    ("rows_per_second", pa.float64()),
])
_RUN_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


@dataclass
class LedgerEntry:
    partition: str
    run_id: str
    model_name: str
    model_version: str
    artifact_sha256: str
    input_sha256: str
    output_sha256: str
    rows_in: int
    rows_scored: int
    rows_quarantined: int
    rows_resumed: int
    started_at: dt.datetime
    ended_at: dt.datetime
    device: str
    rows_per_second: float


def record(lake: Lake, entry: LedgerEntry) -> str:
    """Append one entry for its partition; returns the record's URI."""
    if not _RUN_ID.fullmatch(entry.run_id):
        raise ValueError(f"invalid run id {entry.run_id!r}")
    table = pa.Table.from_pylist([asdict(entry)], schema=LEDGER_SCHEMA)
    return lake.write("ledger", entry.partition, table, part=f"run-{entry.run_id}.parquet")
