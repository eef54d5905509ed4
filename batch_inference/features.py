"""Feature computation for a partition: a pipeline's SQL file run by DuckDB, or a Python callable."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pyarrow as pa

from batch_inference.bounded_duckdb import bounded_connection, quoted

INPUT_TABLE = "input"

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


# A feature query's first DuckDB budget; holistic aggregates (a median) cannot spill, so a query that
# needs more is rerun with twice the budget, up to the last.
FEATURE_MEMORY_LIMITS = ("256MB", "512MB", "1GB", "2GB")


def copy_feature_sql(sql: str, source: str, target: str, row_group_rows: int) -> int:
    """Run `sql` over the Parquet file `source` (as the view `input`) and write the result to the Parquet
    file `target` with DuckDB's `COPY ... TO`, in bounded memory (see `bounded_duckdb`). The rows and their
    order are those of `run_feature_sql` over the same rows. Returns the row count."""
    for limit in FEATURE_MEMORY_LIMITS:
        try:
            with bounded_connection(memory_limit=limit) as con:
                view = f"CREATE VIEW {INPUT_TABLE} AS SELECT * FROM read_parquet({quoted(source)})"  # noqa: S608
                con.execute(view)
                query = sql.strip().rstrip(";")
                row = con.execute(f"COPY ({query}\n) TO {quoted(target)} (FORMAT PARQUET, COMPRESSION ZSTD, "
                                  f"ROW_GROUP_SIZE {int(row_group_rows)})").fetchone()
            return int(row[0]) if row else 0
        except duckdb.OutOfMemoryException:
            if limit == FEATURE_MEMORY_LIMITS[-1]:
                raise
    raise AssertionError("unreachable")


def sql_features(sql: str, key: str = "record_id") -> FeatureFn:
    """A feature function from SQL text (read once, when the pipeline is built) that must select
    the row key column `key` (the key every later stage carries)."""
    if key not in sql:
        raise ValueError(f"feature SQL must select {key} (the key every stage carries)")
    return lambda table: run_feature_sql(sql, table)
