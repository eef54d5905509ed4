import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from batch_inference.defs.card_fraud.features import compute_features
from batch_inference.defs.card_fraud.generator import TRANSACTION_SCHEMA, generate_transactions
from batch_inference.defs.card_fraud.vocabulary import CATEGORY_FEATURES, FEATURE_COLUMNS


def _rows(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=TRANSACTION_SCHEMA)


def test_feature_table_shape_and_keys():
    tx = generate_transactions("2026-02-01", 5_000)
    f = compute_features(tx)
    assert f.num_rows == tx.num_rows
    assert f.column_names == ["record_id", *FEATURE_COLUMNS]  # no label: labels arrive later, on their own
    assert sorted(f.column("record_id").to_pylist()) == sorted(tx.column("record_id").to_pylist())
    for name in FEATURE_COLUMNS:
        assert f.schema.field(name).type == pa.float32()
        assert np.isfinite(f.column(name).to_numpy()).all(), name
    onehot = np.vstack([f.column(c).to_numpy() for c in CATEGORY_FEATURES]).sum(axis=0)
    assert (onehot == 1).all()


def test_per_customer_aggregates_and_flags():
    t0 = dt.datetime(2026, 2, 1, 3, tzinfo=dt.UTC)
    base = {"merchant_category": "grocery", "merchant_country": "US", "card_country": "US",
            "card_present": True, "event_time": t0}
    rows = [
        {**base, "record_id": "a", "customer_id": 1, "amount": 10.0},
        {**base, "record_id": "b", "customer_id": 1, "amount": 30.0, "merchant_country": "FR"},
        {**base, "record_id": "c", "customer_id": 2, "amount": 99.0, "card_present": False,
         "event_time": t0.replace(hour=15), "merchant_category": "jewelry"},
    ]
    f = compute_features(_rows(rows)).to_pylist()
    by_id = {r["record_id"]: r for r in f}
    assert by_id["a"]["customer_txn_count"] == pytest.approx(np.log(2))
    assert by_id["c"]["customer_txn_count"] == pytest.approx(0.0)
    assert by_id["a"]["customer_country_count"] == 2.0
    # customer 1's median is 20: amount 10 is below it, 30 above
    assert by_id["a"]["amount_vs_customer_median"] == pytest.approx(np.log(11 / 21), rel=1e-5)
    assert by_id["b"]["is_foreign"] == 1.0 and by_id["a"]["is_foreign"] == 0.0
    assert by_id["a"]["is_night"] == 1.0 and by_id["c"]["is_night"] == 0.0
    assert by_id["c"]["card_not_present"] == 1.0
    assert by_id["c"]["category_jewelry"] == 1.0 and by_id["c"]["category_grocery"] == 0.0
    assert by_id["c"]["hour_cos"] == pytest.approx(np.cos(2 * np.pi * 15 / 24), abs=1e-6)


def test_empty_day_gives_empty_features():
    f = compute_features(TRANSACTION_SCHEMA.empty_table())
    assert f.num_rows == 0
    assert f.column_names == ["record_id", *FEATURE_COLUMNS]  # no label: labels arrive later, on their own
