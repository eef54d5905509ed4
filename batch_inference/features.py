"""Feature engineering in DuckDB SQL over one day of transactions.

Per-customer aggregates of the day, cyclical hour encodings, risk flags and one-hot merchant
categories, all float32, keyed by `record_id`. `label` carries `is_fraud` for training.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from batch_inference.generator import MERCHANT_CATEGORIES

BASE_FEATURES = (
    "log_amount",
    "amount_vs_customer_median",
    "customer_txn_count",
    "customer_country_count",
    "hour_sin",
    "hour_cos",
    "is_night",
    "is_foreign",
    "card_not_present",
)
CATEGORY_FEATURES = tuple(f"category_{name}" for name in MERCHANT_CATEGORIES)
FEATURE_COLUMNS: tuple[str, ...] = BASE_FEATURES + CATEGORY_FEATURES

# Identifiers below come from the constants above, never from input.
_CATEGORY_SQL = ",\n    ".join(
    f"CAST(t.merchant_category = '{name}' AS FLOAT) AS category_{name}" for name in MERCHANT_CATEGORIES
)
FEATURES_SQL = f"""
WITH per_customer AS (
    SELECT customer_id,
           median(amount) AS median_amount,
           count(*) AS txn_count,
           count(DISTINCT merchant_country) AS country_count
    FROM transactions
    GROUP BY customer_id
)
SELECT
    t.record_id,
    CAST(ln(1 + t.amount) AS FLOAT) AS log_amount,
    CAST(ln((t.amount + 1) / (c.median_amount + 1)) AS FLOAT) AS amount_vs_customer_median,
    CAST(ln(c.txn_count) AS FLOAT) AS customer_txn_count,
    CAST(c.country_count AS FLOAT) AS customer_country_count,
    CAST(sin(2 * pi() * hour(t.event_time) / 24) AS FLOAT) AS hour_sin,
    CAST(cos(2 * pi() * hour(t.event_time) / 24) AS FLOAT) AS hour_cos,
    CAST(hour(t.event_time) < 6 AS FLOAT) AS is_night,
    CAST(t.merchant_country <> t.card_country AS FLOAT) AS is_foreign,
    CAST(NOT t.card_present AS FLOAT) AS card_not_present,
    {_CATEGORY_SQL},
    CAST(t.is_fraud AS TINYINT) AS label
FROM transactions AS t
JOIN per_customer AS c USING (customer_id)
ORDER BY t.record_id
"""  # noqa: S608 - no input is interpolated


def compute_features(transactions: pa.Table) -> pa.Table:
    """Return the feature table for one day of (already validated) transactions."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("transactions", transactions)
        return con.sql(FEATURES_SQL).to_arrow_table()
    finally:
        con.close()
