"""Synthetic card transactions with a planted, learnable fraud signal.

Deterministic: the same date and row count always give the same rows. Options make bad data on
purpose (corrupt rows, drifted distributions, a dropped column) for the quality gates.
"""

from __future__ import annotations

import datetime as dt
import functools
import zlib

import numpy as np
import pyarrow as pa

from batch_inference.defs.card_fraud.vocabulary import (
    CATEGORY_RISK,
    CATEGORY_WEIGHT,
    COUNTRIES,
    COUNTRY_WEIGHT,
    LABEL_ENTITY,
    LABEL_SCHEMA,
    MAX_LABEL_DELAY_DAYS,
    MERCHANT_CATEGORIES,
    N_CUSTOMERS,
    TRANSACTION_SCHEMA,
)


@functools.cache
def _customers() -> tuple[np.ndarray, np.ndarray]:
    """Stable customer profiles: home country index and typical amount."""
    rng = np.random.default_rng(20_240_101)
    home = rng.choice(len(COUNTRIES), size=N_CUSTOMERS, p=COUNTRY_WEIGHT / COUNTRY_WEIGHT.sum())
    typical = rng.lognormal(mean=3.4, sigma=0.6, size=N_CUSTOMERS)
    return home, typical


def _simulate(date: str, rows: int, drift: float = 0.0) -> dict[str, np.ndarray]:
    """The day's draws as numpy arrays (no strings, no Arrow): cheap enough to redo for labels."""
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
    return {"customer": customer, "category": category, "card_country": card_country,
            "merchant_country": merchant_country, "seconds": seconds, "amount": amount,
            "card_present": card_present, "is_fraud": is_fraud, "rng": rng}


def generate_transactions(date: str, rows: int, *, corrupt_rate: float = 0.0, drift: float = 0.0,
                          drop_column: str | None = None) -> pa.Table:
    """Make `rows` transactions for `date` (YYYY-MM-DD)."""
    day = dt.date.fromisoformat(date)
    draws = _simulate(date, rows, drift)
    rng = draws["rng"]
    customer, category, card_country = draws["customer"], draws["category"], draws["card_country"]
    merchant_country, seconds, amount = draws["merchant_country"], draws["seconds"], draws["amount"]
    card_present = draws["card_present"]

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
    }
    if corrupt_rate > 0:
        _corrupt(columns, rng, corrupt_rate, rows)
    table = pa.table(columns, schema=TRANSACTION_SCHEMA)
    if drop_column:
        if drop_column not in table.column_names:
            raise ValueError(f"--drop-column {drop_column!r} is not a column: {table.column_names}")
        table = table.drop_columns([drop_column])
    return table


def label_delays(date: str, is_fraud: np.ndarray) -> np.ndarray:
    """Seconds from each transaction to its label, capped at MAX_LABEL_DELAY_DAYS.

    Fraud becomes known by a chargeback, days to weeks later (2 days + lognormal, median about
    11 days); a genuine payment is confirmed when its dispute window passes (1 day + exponential,
    mean 4 days). Drawn from a stream of its own, so the transactions never change.
    """
    rng = np.random.default_rng(zlib.crc32(f"labels:{date}".encode()))
    days = np.where(is_fraud.astype(bool), 2.0 + rng.lognormal(np.log(9.0), 0.6, len(is_fraud)),
                    1.0 + rng.exponential(4.0, len(is_fraud)))
    return (np.minimum(days, MAX_LABEL_DELAY_DAYS) * 86_400).astype(np.int64)


def generate_labels(date: str, rows: int) -> pa.Table:
    """Every label of the `rows` transactions of `date`, with the time each became known."""
    day = dt.date.fromisoformat(date)
    draws = _simulate(date, rows)
    known = draws["seconds"] + label_delays(date, draws["is_fraud"])
    start = np.datetime64(dt.datetime.combine(day, dt.time()), "us")
    return pa.table({
        "record_id": pa.array([f"tx-{day:%Y%m%d}-{i:08d}" for i in range(rows)], pa.string()),
        "label": pa.array(draws["is_fraud"]),
        "labelled_at": pa.array(start + known.astype("timedelta64[s]"), pa.timestamp("us", tz="UTC")),
    }, schema=LABEL_SCHEMA)


def labels_known_on(date: str, rows: int) -> pa.Table:
    """The labels that became known on `date`: for its own transactions and those of the
    MAX_LABEL_DELAY_DAYS days before (each day assumed to have `rows` transactions)."""
    return labels_arriving(date, date, rows)[date]


def labels_arriving(first: str, last: str, rows: int) -> dict[str, pa.Table]:
    """For each day `first`..`last`, the labels that became known that day (one pass over the days)."""
    start_day, end_day = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    days = [(start_day + dt.timedelta(days=k)) for k in range((end_day - start_day).days + 1)]
    parts: dict[str, list[pa.Table]] = {d.isoformat(): [] for d in days}
    tx_day = start_day - dt.timedelta(days=MAX_LABEL_DELAY_DAYS)
    while tx_day <= end_day:
        draws = _simulate(tx_day.isoformat(), rows)
        known = draws["seconds"] + label_delays(tx_day.isoformat(), draws["is_fraud"])  # seconds after tx_day
        arrival = known // 86_400
        midnight = np.datetime64(dt.datetime.combine(tx_day, dt.time()), "us")
        for offset in np.unique(arrival).tolist():
            day = (tx_day + dt.timedelta(days=offset)).isoformat()
            if day not in parts:
                continue
            rows_today = np.flatnonzero(arrival == offset)
            parts[day].append(pa.table({
                "record_id": pa.array([f"tx-{tx_day:%Y%m%d}-{i:08d}" for i in rows_today.tolist()], pa.string()),
                "label": pa.array(draws["is_fraud"][rows_today]),
                "labelled_at": pa.array(midnight + known[rows_today].astype("timedelta64[s]"),
                                        pa.timestamp("us", tz="UTC")),
            }, schema=LABEL_SCHEMA))
        tx_day += dt.timedelta(days=1)
    return {day: pa.concat_tables(tables) if tables else LABEL_SCHEMA.empty_table()
            for day, tables in parts.items()}


def write_labels(first: str, last: str, rows: int, landing_dir) -> list:
    """Write `fraud_labels_<day>.parquet` for every day `first`..`last` (what arrived each day)."""
    from pathlib import Path

    import pyarrow.parquet as pq

    landing_dir = Path(landing_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for day, table in labels_arriving(first, last, rows).items():
        final = landing_dir / f"{LABEL_ENTITY}_{day}.parquet"
        tmp = landing_dir / f".{final.name}.tmp"
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(final)
        paths.append(final)
    return paths


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
    """Write one day into `landing_dir/transactions_<date>.parquet` atomically, and the labels that
    became known that day into `fraud_labels_<date>.parquet`; returns the transactions' path."""
    from pathlib import Path

    import pyarrow.parquet as pq

    from batch_inference.validation import validate_partition_key

    date = validate_partition_key(date)
    table = generate_transactions(date, rows, corrupt_rate=corrupt_rate, drift=drift, drop_column=drop_column)
    landing_dir = Path(landing_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    final = landing_dir / f"transactions_{date}.parquet"
    write_labels(date, date, rows, landing_dir)
    tmp = landing_dir / f".{final.name}.tmp"
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(final)
    return final
