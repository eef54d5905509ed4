"""Lazy pandera validation of an Arrow table that reports every failing column and row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
from pandera.errors import SchemaErrors


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
