"""Lazy pandera validation of an Arrow table that reports every failing column and row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pandera.errors import SchemaErrors

from batch_inference.bounded_duckdb import bounded_connection, quoted


def to_pandas(table: pa_arrow.Table) -> pd.DataFrame:
    """Arrow to pandas with Arrow-backed strings (no Python objects, vectorised string checks)."""
    return table.to_pandas(types_mapper={pa_arrow.string(): pd.StringDtype("pyarrow")}.get)


@dataclass
class SchemaReport:
    passed: bool
    rows: int
    failing_columns: list[str]
    failure_count: int
    failure_sample: pd.DataFrame


def validate(schema: type[pa.DataFrameModel], table: pa_arrow.Table, sample: int = 20) -> SchemaReport:
    """Validate lazily so that every failing column and check is reported, not just the first."""
    df = to_pandas(table)
    try:
        schema.validate(df, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        columns = sorted({str(c) for c in cases["column"].dropna().unique()}) or [schema.Config.name]
        shown = cases[["column", "check", "failure_case", "index"]].head(sample).astype(str)
        return SchemaReport(False, len(df), columns, len(cases), shown)
    return SchemaReport(True, len(df), [], 0, pd.DataFrame())


def _duplicates(parquet: pq.ParquetFile, path: str | None, column: str) -> pd.DataFrame:
    """(value, count) of every value of `column` found more than once in the whole file: by DuckDB over the
    file on local disk (bounded memory), else from the column alone."""
    if path is not None:
        with bounded_connection() as con:
            sql = (f'SELECT "{column}" AS value, count(*) AS n FROM read_parquet({quoted(path)}) '  # noqa: S608
                   f'WHERE "{column}" IS NOT NULL GROUP BY 1 HAVING count(*) > 1 ORDER BY 1')
            return con.execute(sql).df()
    counts = pc.value_counts(parquet.read(columns=[column]).column(column).combine_chunks())
    found = pd.DataFrame({"value": counts.field("values").to_pandas(), "n": counts.field("counts").to_pandas()})
    return found[found["n"] > 1].dropna().sort_values("value")


def validate_parquet(schema: type[pa.DataFrameModel], parquet: pq.ParquetFile, path: str | None = None,
                     sample: int = 20) -> SchemaReport:
    """`validate` of a whole Parquet file, row group by row group (memory follows the row group, not the
    file): the same verdict and failing columns. A column declared unique is checked over the whole file
    (duplicates across row groups too), by DuckDB when the file is on local disk (`path`)."""
    frame_schema = schema.to_schema()
    unique = [name for name, column in frame_schema.columns.items() if column.unique and not column.regex]
    if unique:
        frame_schema = frame_schema.update_columns({name: {"unique": False} for name in unique})
    cases: list[pd.DataFrame] = []
    failing: set[str] = set()
    count, rows = 0, 0
    groups = range(parquet.num_row_groups) if parquet.num_row_groups else [None]
    for group in groups:
        table = parquet.read_row_group(group) if group is not None else parquet.schema_arrow.empty_table()
        df = to_pandas(table)
        df.index += rows
        rows += len(df)
        try:
            frame_schema.validate(df, lazy=True)
        except SchemaErrors as exc:
            found = exc.failure_cases
            count += len(found)
            failing |= {str(c) for c in found["column"].dropna().unique()}
            if sum(len(c) for c in cases) < sample:
                cases.append(found[["column", "check", "failure_case", "index"]].head(sample))
    for name in unique:
        if name not in parquet.schema_arrow.names:
            continue
        dups = _duplicates(parquet, path, name)
        if len(dups):
            count += int(dups["n"].sum())  # as pandera counts them: every occurrence of a repeated value
            failing.add(name)
            cases.append(pd.DataFrame({"column": name, "check": "field_uniqueness",
                                       "failure_case": dups["value"].head(sample), "index": None}))
    if not count:
        return SchemaReport(True, rows, [], 0, pd.DataFrame())
    shown = pd.concat(cases, ignore_index=True).head(sample).astype(str)
    return SchemaReport(False, rows, sorted(failing) or [schema.Config.name], count, shown)


def failing_rows(schema: type[pa.DataFrameModel], table: pa_arrow.Table) -> tuple[np.ndarray, list[str]]:
    """Row-level rule violations: (row indices, one reason each), from the same schema the check uses.

    The first failing rule of a row is its reason, e.g. `amount: less_than_or_equal_to(1000000)
    failed for 1250000.0`. Column-level problems (a missing column, a wrong dtype) are not row
    problems and are left to the file-level checks.
    """
    df = to_pandas(table)
    try:
        schema.validate(df, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
        cases = cases[cases["index"].notna()]
        reasons: dict[int, str] = {}
        for column, check, value, index in cases[["column", "check", "failure_case", "index"]].itertuples(
                index=False):
            row = int(index)
            if row not in reasons:
                reasons[row] = f"{column}: {check} failed for {value!r}"
        rows = np.fromiter(sorted(reasons), dtype=np.int64, count=len(reasons))
        return rows, [reasons[int(r)] for r in rows]
    return np.zeros(0, np.int64), []
