"""The serving layer: checked partitions published as immutable Parquet, read through DuckDB views.

A publish writes one file per partition (`lake/<pipeline>/<serving asset>/date=D/part-0.parquet`)
and makes it visible in one atomic step (a rename locally, a single object on S3). No database
file sits between the writer and its readers: a reader opens its own DuckDB connection (in
memory) with views over the lake, so it never blocks a publish, and a long query keeps reading
the files it opened, so it only ever sees whole days.

`warehouse.sql` under the data root holds those views; `duckdb -init warehouse.sql` or
`connect()` gives a ready connection.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import duckdb
import pyarrow.fs as pafs

from batch_inference.lake import filesystem_for
from batch_inference.validation import validate_identifier


def _literal(text: str) -> str:
    """A SQL string literal (for paths from configuration, which cannot be bound in DDL)."""
    return "'" + text.replace("'", "''") + "'"


def view_statements(lake_root: str) -> list[str]:
    """`CREATE VIEW <pipeline>.<asset>` for every asset folder with data under a local lake root."""
    root = Path(lake_root)
    statements: list[str] = []
    if not root.is_dir():
        return statements
    for pipeline_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        pipeline = validate_identifier(pipeline_dir.name)
        assets = [a for a in sorted(pipeline_dir.iterdir())
                  if a.is_dir() and not a.name.startswith(("_", ".")) and any(a.glob("date=*/*.parquet"))]
        if not assets:
            continue
        statements.append(f"CREATE SCHEMA IF NOT EXISTS {pipeline};")
        for asset_dir in assets:
            asset = validate_identifier(asset_dir.name)
            pattern = _literal(f"{asset_dir}/date=*/*.parquet")
            # Identifiers are validated folder names; the path is quoted as a literal.
            statements.append(f"CREATE OR REPLACE VIEW {pipeline}.{asset} AS SELECT * FROM read_parquet("  # noqa: S608
                              f"{pattern}, hive_partitioning = true, union_by_name = true);")
    return statements


def write_views_sql(path: Path, lake_root: str) -> list[str]:
    """Write the views script atomically (readers of the old script are unaffected); returns the views."""
    statements = view_statements(lake_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".warehouse-", suffix=".sql.tmp", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write("-- Views over the lake, rewritten by every publish. Use: duckdb -init warehouse.sql\n")
        handle.write("\n".join(statements) + "\n")
    os.replace(tmp, path)
    return [s.split(" VIEW ", 1)[1].split(" AS ", 1)[0] for s in statements if " VIEW " in s]


def connect(lake_root: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view per pipeline asset (`<pipeline>.predictions`, ...).

    Readers hold no lock on anything a writer needs; close the connection when done. A lake on S3
    is read through pyarrow datasets (DuckDB's httpfs extension is not needed).
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    fs, root = filesystem_for(lake_root)
    if isinstance(fs, pafs.LocalFileSystem):
        for statement in view_statements(root):
            con.execute(statement)
        return con
    import pyarrow.dataset as ds

    for pipeline_dir in _subdirs(fs, root):
        pipeline = validate_identifier(pipeline_dir.base_name)
        for asset_dir in _subdirs(fs, pipeline_dir.path):
            asset = validate_identifier(asset_dir.base_name)
            dataset = ds.dataset(asset_dir.path, filesystem=fs, format="parquet", partitioning="hive",
                                 exclude_invalid_files=True)
            if not dataset.files:
                continue
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {pipeline}")
            con.register(f"_{pipeline}__{asset}", dataset)
            # Identifiers are validated folder names.
            con.execute(f"CREATE OR REPLACE VIEW {pipeline}.{asset} AS SELECT * FROM _{pipeline}__{asset}")  # noqa: S608
    return con


def _subdirs(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted((i for i in infos if i.type == pafs.FileType.Directory and not i.base_name.startswith(("_", "."))),
                  key=lambda i: i.base_name)
