"""DuckDB connections with a memory budget: queries over Parquet files spill to disk instead of growing.

The streamed steps (features `COPY ... TO`, completeness over files, duplicate keys of a schema check)
run here, so their memory stays flat whatever the day's size.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

import duckdb

MEMORY_LIMIT = "128MB"  # DuckDB's buffer budget; hash tables and sorts spill to a temporary folder beyond it
THREADS = 2


def quoted(text: str) -> str:
    """A SQL string literal (a file path)."""
    return "'" + text.replace("'", "''") + "'"


@contextlib.contextmanager
def bounded_connection(memory_limit: str = MEMORY_LIMIT, threads: int = THREADS) -> Iterator[duckdb.DuckDBPyConnection]:
    """A private in-memory DuckDB (UTC) that spills to its own temporary folder, removed on exit."""
    with tempfile.TemporaryDirectory(prefix="bi-duckdb-") as spill:
        con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": spill,
                                     "threads": max(1, min(threads, os.cpu_count() or 1))})
        try:
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            con.close()
