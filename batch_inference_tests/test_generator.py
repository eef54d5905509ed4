import numpy as np
import pyarrow.compute as pc
import pytest

from batch_inference.defs.card_fraud.generator import (
    TRANSACTION_SCHEMA,
    generate_labels,
    generate_transactions,
)


def test_deterministic_per_date():
    a = generate_transactions("2026-03-01", 2_000)
    b = generate_transactions("2026-03-01", 2_000)
    c = generate_transactions("2026-03-02", 2_000)
    assert a.equals(b)
    assert not a.column("amount").equals(c.column("amount"))


def test_schema_unique_ids_and_plausible_values():
    t = generate_transactions("2026-03-01", 20_000)
    assert t.schema == TRANSACTION_SCHEMA
    assert pc.count_distinct(t.column("record_id")).as_py() == t.num_rows
    assert all(r.startswith("tx-20260301-") for r in t.column("record_id").to_pylist()[:5])
    amount = t.column("amount").to_numpy()
    assert (amount >= 0).all() and np.isfinite(amount).all()
    assert "is_fraud" not in t.column_names  # labels are their own landing entity, weeks later
    assert 0.005 < generate_labels("2026-03-01", 20_000).column("label").to_numpy().mean() < 0.08


def test_fraud_signal_is_planted():
    t = generate_transactions("2026-03-01", 50_000)
    fraud = generate_labels("2026-03-01", 50_000).column("label").to_numpy().astype(bool)
    foreign = pc.not_equal(t.column("merchant_country"), t.column("card_country")).to_numpy()
    assert fraud[foreign].mean() > 3 * fraud[~foreign].mean()


def test_bad_data_options():
    corrupt = generate_transactions("2026-03-01", 10_000, corrupt_rate=0.05)
    assert corrupt.column("record_id").null_count + corrupt.column("amount").null_count > 0
    drifted = generate_transactions("2026-03-01", 10_000, drift=1.0)
    clean = generate_transactions("2026-03-01", 10_000)
    assert np.median(drifted.column("amount").to_numpy()) > 1.5 * np.median(clean.column("amount").to_numpy())
    dropped = generate_transactions("2026-03-01", 100, drop_column="amount")
    assert "amount" not in dropped.column_names
    with pytest.raises(ValueError, match="not a column"):
        generate_transactions("2026-03-01", 100, drop_column="nope")
