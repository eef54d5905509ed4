"""The DuckDB warehouse: views over the lake, and the published (checked) predictions table.

DuckDB allows one writer process per file, so every write here opens, writes and closes, and
retries briefly if another process holds the lock. Dagster serialises these steps with a pool.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from batch_inference.lake import Lake
from batch_inference.validation import validate_identifier, validate_partition_key

VIEW_ASSETS = ("transactions", "features", "predictions", "quarantine", "ledger")
SERVING_TABLE = "serving_predictions"


def _literal(text: str) -> str:
    """A SQL string literal (for paths from configuration, which cannot be bound in DDL)."""
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def connect(path: Path, read_only: bool = False, attempts: int = 50) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse, waiting (up to ~10 s) while another process holds the write lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or attempt == attempts - 1:
                raise
            time.sleep(0.2)
    try:
        yield con
    finally:
        con.close()


def refresh_views(path: Path, lake: Lake) -> list[str]:
    """(Re)create one view per lake asset that has data; returns the view names."""
    if not lake.is_local:
        return []  # DuckDB's httpfs cannot be installed offline; S3 lakes are read via pyarrow.
    created = []
    with connect(path) as con:
        for asset in VIEW_ASSETS:
            if not any(Path(lake.root, validate_identifier(asset)).glob("date=*/*.parquet")):
                continue
            pattern = f"{lake.root}/{asset}/date=*/*.parquet"
            # The view name comes from VIEW_ASSETS and the path is quoted as a literal.
            sql = (f"CREATE OR REPLACE VIEW {asset} AS SELECT * FROM read_parquet("  # noqa: S608
                   f"{_literal(pattern)}, hive_partitioning = true, union_by_name = true)")
            con.execute(sql)
            created.append(asset)
    return created


def publish_predictions(path: Path, date: str, predictions: pa.Table) -> int:
    """Replace one day of the serving table with `predictions`; returns the row count."""
    date = validate_partition_key(date)
    with connect(path) as con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS serving_predictions ("
            "date DATE, record_id VARCHAR, score FLOAT, model_name VARCHAR, model_version VARCHAR, "
            "scored_at TIMESTAMPTZ, run_id VARCHAR)"
        )
        con.register("incoming", predictions)
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM serving_predictions WHERE date = ?", [date])
        con.execute(
            "INSERT INTO serving_predictions SELECT CAST(? AS DATE), record_id, score, model_name, "
            "model_version, scored_at, run_id FROM incoming",
            [date],
        )
        con.execute("COMMIT")
        con.unregister("incoming")
        return con.execute("SELECT count(*) FROM serving_predictions WHERE date = ?", [date]).fetchall()[0][0]
