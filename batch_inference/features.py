"""Feature computation for a partition: a pipeline's SQL file run by DuckDB, or a Python callable."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

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
    """Run `sql` over the Parquet file `source` (as the view `input`) with DuckDB's `COPY ... TO` a
    temporary file, in bounded memory (see `bounded_duckdb`), then stream it into the Parquet file
    `target` in row groups of exactly `row_group_rows` (the unit of checkpointed scoring). The rows, types
    and order are those of `run_feature_sql` over the same rows. Returns the row count."""
    with tempfile.TemporaryDirectory(prefix="bi-features-") as tmp:
        copied = os.path.join(tmp, "features.parquet")
        for limit in FEATURE_MEMORY_LIMITS:
            try:
                with bounded_connection(memory_limit=limit) as con:
                    view = f"CREATE VIEW {INPUT_TABLE} AS SELECT * FROM read_parquet({quoted(source)})"  # noqa: S608
                    con.execute(view)
                    # COPY binds no parameters: `sql` is the pipeline's own feature query (its code, checked
                    # by `batch-inference check`), the target a temporary path we made, quoted.
                    con.execute(f"COPY ({sql.strip().rstrip(';')}\n) TO {quoted(copied)} (FORMAT PARQUET)")
                break
            except duckdb.OutOfMemoryException:
                if limit == FEATURE_MEMORY_LIMITS[-1]:
                    raise
        return _rechunk(copied, target, row_group_rows)


def _rechunk(source: str, target: str, row_group_rows: int) -> int:
    """Stream `source` into `target` in row groups of `row_group_rows`, every column nullable (as an
    Arrow result of the same query is)."""
    parquet = pq.ParquetFile(source)
    schema = pa.schema([f.with_nullable(True) for f in parquet.schema_arrow])
    rows = 0
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:
        for batch in parquet.iter_batches(batch_size=row_group_rows):
            writer.write_table(pa.Table.from_batches([batch]).cast(schema), row_group_size=row_group_rows)
            rows += batch.num_rows
        if not rows:
            writer.write_table(schema.empty_table())
    return rows


def sql_features(sql: str, key: str = "record_id") -> FeatureFn:
    """A feature function from SQL text (read once, when the pipeline is built) that must select
    the row key column `key` (the key every later stage carries)."""
    if key not in sql:
        raise ValueError(f"feature SQL must select {key} (the key every stage carries)")
    return lambda table: run_feature_sql(sql, table)
