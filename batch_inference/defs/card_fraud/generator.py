"""Synthetic card transactions with a planted, learnable fraud signal.

Deterministic: the same date and row count always give the same rows. Options make bad data on
purpose (corrupt rows, drifted distributions, a dropped column) for the quality gates.
"""

from __future__ import annotations

import datetime as dt
import zlib

import numpy as np
import pyarrow as pa

from batch_inference.defs.card_fraud.vocabulary import (
    CATEGORY_RISK,
    CATEGORY_WEIGHT,
    COUNTRIES,
    COUNTRY_WEIGHT,
    MERCHANT_CATEGORIES,
    N_CUSTOMERS,
    TRANSACTION_SCHEMA,
)


def _customers() -> tuple[np.ndarray, np.ndarray]:
    """Stable customer profiles: home country index and typical amount."""
    rng = np.random.default_rng(20_240_101)
    home = rng.choice(len(COUNTRIES), size=N_CUSTOMERS, p=COUNTRY_WEIGHT / COUNTRY_WEIGHT.sum())
    typical = rng.lognormal(mean=3.4, sigma=0.6, size=N_CUSTOMERS)
    return home, typical


def generate_transactions(date: str, rows: int, *, corrupt_rate: float = 0.0, drift: float = 0.0,
                          drop_column: str | None = None) -> pa.Table:
    """Make `rows` transactions for `date` (YYYY-MM-DD)."""
    day = dt.date.fromisoformat(date)
    rng = np.random.default_rng(zlib.crc32(date.encode()))
    home, typical = _customers()

    customer = rng.integers(0, N_CUSTOMERS, size=rows)
    category = rng.choice(len(MERCHANT_CATEGORIES), size=rows, p=CATEGORY_WEIGHT / CATEGORY_WEIGHT.sum())
    card_country = home[customer]
    travelling = rng.random(rows) < (0.06 + 0.1 * drift)
    merchant_country = np.where(
        travelling, rng.integers(0, len(COUNTRIES), size=rows), card_country
    )
    seconds = rng.integers(0, 86_400, size=rows)
    night_shift = rng.random(rows) < 0.1 * drift
    seconds = np.where(night_shift, seconds % (6 * 3600), seconds)
    hour = seconds // 3600
    spend = rng.lognormal(mean=0.0, sigma=0.7, size=rows) * (1.0 + drift)
    amount = np.round(typical[customer] * spend, 2)
    card_present = rng.random(rows) < max(0.05, 0.7 - 0.3 * drift)

    logit = (
        -5.2
        + 2.2 * (merchant_country != card_country)
        + 1.4 * (hour < 6)
        + 1.1 * np.clip(np.log(spend), -1.0, 3.0)
        + CATEGORY_RISK[category]
        + 0.9 * ~card_present
    )
    is_fraud = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)

    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    prefix = f"tx-{day:%Y%m%d}-"
    columns = {
        "record_id": pa.array([f"{prefix}{i:08d}" for i in range(rows)], pa.string()),
        "event_time": pa.array(
            np.datetime64(start.replace(tzinfo=None), "us") + seconds.astype("timedelta64[s]"),
            pa.timestamp("us", tz="UTC"),
        ),
        "customer_id": pa.array(customer.astype(np.int64)),
        "merchant_category": pa.array(np.array(MERCHANT_CATEGORIES, dtype=object)[category]),
        "merchant_country": pa.array(np.array(COUNTRIES, dtype=object)[merchant_country]),
        "card_country": pa.array(np.array(COUNTRIES, dtype=object)[card_country]),
        "amount": pa.array(amount),
        "card_present": pa.array(card_present),
        "is_fraud": pa.array(is_fraud),
    }
    if corrupt_rate > 0:
        _corrupt(columns, rng, corrupt_rate, rows)
    table = pa.table(columns, schema=TRANSACTION_SCHEMA)
    if drop_column:
        if drop_column not in table.column_names:
            raise ValueError(f"--drop-column {drop_column!r} is not a column: {table.column_names}")
        table = table.drop_columns([drop_column])
    return table


def _corrupt(columns: dict[str, pa.Array], rng: np.random.Generator, rate: float, rows: int) -> None:
    """Make about `rate` of the rows bad, in varied ways (one defect per bad row)."""
    bad = np.flatnonzero(rng.random(rows) < rate)
    kinds = rng.integers(0, 6, size=len(bad))
    record_id = columns["record_id"].to_pylist()
    amount = columns["amount"].to_numpy(zero_copy_only=False).astype(object)
    category = columns["merchant_category"].to_pylist()
    for row, kind in zip(bad.tolist(), kinds.tolist(), strict=True):
        if kind == 0:
            amount[row] = None
        elif kind == 1:
            amount[row] = float("nan")
        elif kind == 2:
            amount[row] = -abs(float(amount[row]) or 1.0)
        elif kind == 3:
            category[row] = "unknown_category"
        elif kind == 4:
            record_id[row] = None
        else:
            record_id[row] = record_id[row - 1] if row > 0 else None
    columns["record_id"] = pa.array(record_id, pa.string())
    columns["amount"] = pa.array(amount.tolist(), pa.float64(), from_pandas=False)
    columns["merchant_category"] = pa.array(category, pa.string())


def write_landing(date: str, rows: int, landing_dir, *, corrupt_rate: float = 0.0, drift: float = 0.0,
                  drop_column: str | None = None):
    """Write one day into `landing_dir/transactions_<date>.parquet` atomically; returns the path."""
    from pathlib import Path

    import pyarrow.parquet as pq

    from batch_inference.validation import validate_partition_key

    date = validate_partition_key(date)
    table = generate_transactions(date, rows, corrupt_rate=corrupt_rate, drift=drift, drop_column=drop_column)
    landing_dir = Path(landing_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    final = landing_dir / f"transactions_{date}.parquet"
    tmp = landing_dir / f".transactions_{date}.parquet.tmp"
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(final)
    return final
