"""Feature computation for a partition: a pipeline's SQL file run by DuckDB, or a Python callable."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import duckdb
import pyarrow as pa

INPUT_TABLE = "input"
# DuckDB's budget for a streamed feature query: its hash tables and sorts spill to disk beyond it, so
# the step's memory stays flat whatever the day's size.
DUCKDB_MEMORY_LIMIT = "256MB"
DUCKDB_THREADS = 2

FeatureFn = Callable[[pa.Table], pa.Table]


def run_feature_sql(sql: str, table: pa.Table) -> pa.Table:
    """Run `sql` over `table`, registered as `input`, in a private in-memory DuckDB (UTC)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register(INPUT_TABLE, table)
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def _quoted(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def copy_feature_sql(sql: str, source: str, target: str, row_group_rows: int,
                     memory_limit: str = DUCKDB_MEMORY_LIMIT, threads: int = DUCKDB_THREADS) -> int:
    """Run `sql` over the Parquet file `source` (as the view `input`) and write the result to the Parquet
    file `target` with DuckDB's `COPY ... TO`, streaming in bounded memory (spilling to a temporary folder).
    The result's rows and order are those of `run_feature_sql` over the same rows. Returns the row count."""
    with tempfile.TemporaryDirectory(prefix="bi-features-") as spill:
        con = duckdb.connect(config={"memory_limit": memory_limit, "threads": max(1, min(threads, os.cpu_count() or 1)),
                                     "temp_directory": spill, "preserve_insertion_order": True})
        try:
            con.execute("SET TimeZone = 'UTC'")
            view = f"CREATE VIEW {INPUT_TABLE} AS SELECT * FROM read_parquet({_quoted(source)})"  # noqa: S608 - a quoted literal
            con.execute(view)
            query = sql.strip().rstrip(";")
            row = con.execute(f"COPY ({query}\n) TO {_quoted(target)} "
                              f"(FORMAT PARQUET, COMPRESSION ZSTD, ROW_GROUP_SIZE {int(row_group_rows)})").fetchone()
        finally:
            con.close()
    return int(row[0]) if row else 0


def sql_features(sql: str, key: str = "record_id") -> FeatureFn:
    """A feature function from SQL text (read once, when the pipeline is built) that must select
    the row key column `key` (the key every later stage carries)."""
    if key not in sql:
        raise ValueError(f"feature SQL must select {key} (the key every stage carries)")
    return lambda table: run_feature_sql(sql, table)
