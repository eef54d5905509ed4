"""The upstream sales feed of the store-demand example: its Arrow schema and a deterministic generator.

One row per (store, item) and day: the day's price and promotion, the units sold on the recent
days the features need (lags 1..7, 14, 21, 28) and the day's own units (the training label).
Demand has a weekly season (weekends sell more), promotions and a per-(store, item) level.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

ITEMS = 40
LAGS = (1, 2, 3, 4, 5, 6, 7, 14, 21, 28)
# Monday .. Sunday: weekends sell more. Moderate on purpose: a real weekly season, not a new regime.
WEEKLY = np.array([1.0, 0.96, 0.96, 1.0, 1.06, 1.14, 1.1])
PROMOTION_RATE, PROMOTION_LIFT = 0.1, 1.35

SALES_SCHEMA = pa.schema([
    pa.field("record_id", pa.string(), nullable=False),
    pa.field("store_id", pa.int32()),
    pa.field("item_id", pa.int32()),
    pa.field("sale_date", pa.timestamp("us", tz="UTC")),
    pa.field("price", pa.float64()),
    pa.field("on_promotion", pa.bool_()),
    *[pa.field(f"units_lag_{lag}", pa.float64()) for lag in LAGS],
    pa.field("units", pa.float64()),
])


def _levels(stores: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable per-(store, item) demand levels and per-item prices."""
    rng = np.random.default_rng(20_250_101)
    store_size = rng.lognormal(0.0, 0.6, size=max(stores, 1))
    item_pull = rng.lognormal(1.4, 0.7, size=ITEMS)
    price = np.round(rng.lognormal(1.5, 0.5, size=ITEMS), 2)
    return np.outer(store_size[:stores], item_pull).reshape(-1), price


def _day(day: dt.date, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Units sold and promotion flags of every (store, item) on `day`: the same whoever asks."""
    rng = np.random.default_rng(day.toordinal() * 7_919 + len(level))
    promoted = rng.random(len(level)) < PROMOTION_RATE
    expected = level * WEEKLY[day.weekday()] * np.where(promoted, PROMOTION_LIFT, 1.0)
    return rng.poisson(expected).astype(np.float64), promoted


def generate_sales(date: str, rows: int) -> pa.Table:
    """About `rows` sales rows of `date` (YYYY-MM-DD): `rows // ITEMS` stores times ITEMS items."""
    day = dt.date.fromisoformat(date)
    stores = max(1, rows // ITEMS)
    level, price = _levels(stores)
    units, promoted = _day(day, level)
    store = np.repeat(np.arange(stores, dtype=np.int32), ITEMS)
    item = np.tile(np.arange(ITEMS, dtype=np.int32), stores)
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    columns = {
        "record_id": [f"{date}:s{s:04d}:i{i:03d}" for s, i in zip(store.tolist(), item.tolist(), strict=True)],
        "store_id": store, "item_id": item,
        "sale_date": pa.array([midnight] * len(level), pa.timestamp("us", tz="UTC")),
        "price": np.tile(price, stores), "on_promotion": promoted,
        **{f"units_lag_{lag}": _day(day - dt.timedelta(days=lag), level)[0] for lag in LAGS},
        "units": units,
    }
    return pa.table(columns, schema=SALES_SCHEMA)
