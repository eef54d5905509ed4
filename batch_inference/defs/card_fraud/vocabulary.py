"""The card-fraud vocabulary: merchant categories, countries and the landing schema."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

MERCHANT_CATEGORIES = (
    "grocery", "restaurants", "fuel", "pharmacy", "apparel", "electronics",
    "travel", "entertainment", "online_services", "home_improvement", "jewelry", "gift_cards",
)
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "CA", "BR", "IN", "NG", "RU")
CATEGORY_RISK = np.array([-1.2, -0.8, -0.6, -0.9, 0.0, 1.0, 0.6, 0.2, 0.5, -0.3, 1.3, 1.8])
CATEGORY_WEIGHT = np.array([20, 15, 10, 6, 8, 5, 4, 6, 10, 5, 2, 2], dtype=float)
COUNTRY_WEIGHT = np.array([40, 12, 10, 8, 6, 5, 4, 6, 4, 3, 1, 1], dtype=float)
N_CUSTOMERS = 20_000

TRANSACTION_SCHEMA = pa.schema([
    ("record_id", pa.string()),
    ("event_time", pa.timestamp("us", tz="UTC")),
    ("customer_id", pa.int64()),
    ("merchant_category", pa.string()),
    ("merchant_country", pa.string()),
    ("card_country", pa.string()),
    ("amount", pa.float64()),
    ("card_present", pa.bool_()),
])

# Labels are their own landing entity, `fraud_labels_YYYY-MM-DD.parquet`: the labels that became
# known that day (a chargeback for fraud, the dispute window passing for a genuine payment), for
# transactions of that day and of up to MAX_LABEL_DELAY_DAYS before it.
LABEL_ENTITY = "fraud_labels"
MAX_LABEL_DELAY_DAYS = 30
LABEL_SCHEMA = pa.schema([
    ("record_id", pa.string()),
    ("label", pa.int8()),
    ("labelled_at", pa.timestamp("us", tz="UTC")),
])

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
# What features.sql computes, in order (a test keeps the two in step).
FEATURE_COLUMNS: tuple[str, ...] = BASE_FEATURES + CATEGORY_FEATURES
