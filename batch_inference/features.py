"""Feature computation for a partition: a pipeline's SQL file run by DuckDB, or a Python callable."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pyarrow as pa

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


def sql_features(sql: str, key: str = "record_id") -> FeatureFn:
    """A feature function from SQL text (read once, when the pipeline is built) that must select
    the row key column `key` (the key every later stage carries)."""
    if key not in sql:
        raise ValueError(f"feature SQL must select {key} (the key every stage carries)")
    return lambda table: run_feature_sql(sql, table)
