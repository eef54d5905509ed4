"""The card-fraud features outside Dagster (tests, notebooks): the pipeline's own SQL file."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from batch_inference.features import run_feature_sql

FEATURES_SQL = (Path(__file__).resolve().parent / "features.sql").read_text()


def compute_features(transactions: pa.Table) -> pa.Table:
    """The feature table of one day of (validated) transactions."""
    return run_feature_sql(FEATURES_SQL, transactions)


def labelled_features(date: str, rows: int) -> pa.Table:
    """A generated day's features joined with every label its transactions eventually get."""
    from batch_inference.defs.card_fraud.generator import generate_labels, generate_transactions
    from batch_inference.defs.card_fraud.training import join_labels

    return join_labels(compute_features(generate_transactions(date, rows)), generate_labels(date, rows))
