"""The serving layer: checked partitions published as immutable Parquet, read through DuckDB views.

A publish writes one file per partition (`lake/<pipeline>/<serving asset>/date=D/part-0.parquet`)
and makes it visible in one atomic step (a rename locally, a single object on S3). No database
file sits between the writer and its readers: a reader opens its own DuckDB connection (in
memory) with views over the lake, so it never blocks a publish, and a long query keeps reading
the files it opened, so it only ever sees whole days.

`warehouse.sql` under the data root holds those views; `duckdb -init warehouse.sql` or
`connect()` gives a ready connection.

A key is served once: the view of a pipeline's serving asset keeps, for each key (`record_id`, or
the row key its YAML declares), the row of the latest day that holds it (a key re-delivered on a
later day replaces the earlier row; the order days were ingested or backfilled in does not
matter). The other views (predictions, features, ...) show each day's files as they are.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from batch_inference.lake import filesystem_for
from batch_inference.validation import validate_identifier


def _literal(text: str) -> str:
    """A SQL string literal (for paths from configuration, which cannot be bound in DDL)."""
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    """A validated plain identifier (letters, digits, underscore): DDL cannot bind identifiers."""
    return validate_identifier(name)


OUTPUT_KEY = "record_id"  # the output rows' key unless the pipeline declares its own


def serving_keys() -> dict[tuple[str, str], tuple[str, ...]]:
    """(pipeline, serving asset) -> its key column candidates (the row key its YAML declares, then
    `record_id`), for every pipeline declared in the defs folder (read from its YAML)."""
    from batch_inference.pipelines import discover

    found = {}
    for name, info in discover().items():
        found[(name, info.spec.serving.asset)] = tuple(dict.fromkeys((info.row_key, OUTPUT_KEY)))
    return found


def _served_key(candidates: tuple[str, ...], columns: list[str]) -> str | None:
    """The first key candidate the served files hold (None: not a serving asset, or no key column)."""
    return next((k for k in candidates if k in columns), None)


def _view_ddl(pipeline: str, asset: str, source: str, key: str | None = None) -> list[str]:
    """The schema and view of one lake asset, over `source` (a table function or a registered name);
    with a `key`, the latest day's row of each key only."""
    select = f"SELECT * FROM {source}"  # noqa: S608 - validated identifiers and quoted literals only
    if key:
        select += f" QUALIFY row_number() OVER (PARTITION BY {_ident(key)} ORDER BY date DESC) = 1"
    return [f"CREATE SCHEMA IF NOT EXISTS {_ident(pipeline)};",
            f"CREATE OR REPLACE VIEW {_ident(pipeline)}.{_ident(asset)} AS {select};"]


def lake_assets(fs: pafs.FileSystem, root: str) -> list[tuple[str, str, str]]:
    """(pipeline, asset, path) of every asset folder holding Parquet files under a lake root."""
    found = []
    for pipeline_dir in _subdirs(fs, root):
        for asset_dir in _subdirs(fs, pipeline_dir.path):
            files = fs.get_file_info(pafs.FileSelector(asset_dir.path, recursive=True))
            if any(f.type == pafs.FileType.File and f.base_name.endswith(".parquet") for f in files):
                found.append((pipeline_dir.base_name, asset_dir.base_name, asset_dir.path))
    return found


def view_statements(lake_root: str) -> list[str]:
    """`CREATE VIEW <pipeline>.<asset>` for every asset folder with data under a local lake root."""
    fs, root = filesystem_for(lake_root)
    statements: list[str] = []
    served = serving_keys()
    for pipeline, asset, path in lake_assets(fs, root):
        key = _served_key(served[(pipeline, asset)], _columns(fs, path)) if (pipeline, asset) in served else None
        # The path is quoted as a literal; the identifiers are validated and quoted.
        statements += _view_ddl(pipeline, asset, f"read_parquet({_literal(f'{path}/date=*/*.parquet')}, "
                                                 "hive_partitioning = true, union_by_name = true)", key)
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

    partitioning = ds.partitioning(pa.schema([("date", pa.date32())]), flavor="hive")  # as the local views
    served = serving_keys()
    for pipeline, asset, path in lake_assets(fs, root):
        name = f"_{validate_identifier(pipeline)}__{validate_identifier(asset)}"
        dataset = ds.dataset(path, filesystem=fs, format="parquet", partitioning=partitioning,
                             exclude_invalid_files=True)
        con.register(name, dataset)
        key = _served_key(served[(pipeline, asset)], dataset.schema.names) if (pipeline, asset) in served else None
        for statement in _view_ddl(pipeline, asset, name, key):
            con.execute(statement)
    return con


def _columns(fs: pafs.FileSystem, path: str) -> list[str]:
    """Column names of the first Parquet file of an asset folder (a schema read, no data)."""
    files = sorted(f.path for f in fs.get_file_info(pafs.FileSelector(path, recursive=True))
                   if f.type == pafs.FileType.File and f.base_name.endswith(".parquet"))
    with fs.open_input_file(files[0]) as handle:
        return pq.read_schema(handle).names


def _subdirs(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted((i for i in infos if i.type == pafs.FileType.Directory and not i.base_name.startswith(("_", "."))),
                  key=lambda i: i.base_name)
