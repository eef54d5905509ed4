"""The card-fraud features outside Dagster (tests, notebooks): the pipeline's own SQL file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from batch_inference.features import run_feature_sql

FEATURES_SQL = (Path(__file__).resolve().parent / "features.sql").read_text()


def compute_features(transactions: pa.Table) -> pa.Table:
    """The feature table of one day of (validated) transactions."""
    return run_feature_sql(FEATURES_SQL, transactions)
