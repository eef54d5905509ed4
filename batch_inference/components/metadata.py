"""Definition metadata: a pandera model's columns in the UI (via dagster-pandera)."""

from __future__ import annotations

import warnings

import dagster as dg


def column_schema(schema) -> dict:
    """`dagster/column_schema` from a pandera DataFrameModel, or nothing when there is none."""
    if schema is None:
        return {}
    from dagster_pandera import pandera_schema_to_dagster_type

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # the converter is marked beta; its output is stable
        table_schema = pandera_schema_to_dagster_type(schema).metadata["schema"].value
    return {"dagster/column_schema": table_schema, "pandera_schema": schema.Config.name}
