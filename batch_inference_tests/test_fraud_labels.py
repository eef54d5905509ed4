"""card_fraud labels as their own landing entity: late, complete, and joined only for training."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch_inference.defs.card_fraud.generator import (
    generate_labels,
    generate_transactions,
    labels_known_on,
    write_landing,
)
from batch_inference.defs.card_fraud.training import join_labels
from batch_inference.defs.card_fraud.vocabulary import LABEL_SCHEMA, MAX_LABEL_DELAY_DAYS

DAY = "2026-01-05"


def test_every_label_of_a_day_arrives_once_and_late():
    rows = 4_000
    truth = generate_labels(DAY, rows)
    fraud = truth.column("label").to_numpy().astype(bool)
    assert 0.005 < fraud.mean() < 0.08
    tx_time = generate_transactions(DAY, rows).column("event_time").to_numpy()
    delay_days = (truth.column("labelled_at").to_numpy() - tx_time) / np.timedelta64(1, "D")
    assert delay_days.min() >= 1.0 and delay_days.max() <= MAX_LABEL_DELAY_DAYS
    assert np.median(delay_days[fraud]) > 7 > 4 > np.median(delay_days[~fraud])  # chargebacks come weeks later

    arrived: dict[str, int] = {}
    start = dt.date.fromisoformat(DAY)
    for k in range(MAX_LABEL_DELAY_DAYS + 1):
        day = (start + dt.timedelta(days=k)).isoformat()
        known = labels_known_on(day, rows)
        assert known.schema == LABEL_SCHEMA
        assert all(t.date().isoformat() == day for t in known.column("labelled_at").to_pylist())
        mine = known.filter(pa.compute.starts_with(known.column("record_id"), "tx-20260105-"))
        for rid, label in zip(mine.column("record_id").to_pylist(), mine.column("label").to_pylist(), strict=True):
            assert rid not in arrived
            arrived[rid] = label
    assert len(arrived) == rows
    assert [arrived[r] for r in truth.column("record_id").to_pylist()] == truth.column("label").to_pylist()


def test_landing_writes_the_day_and_the_labels_known_that_day(tmp_path):
    path = write_landing(DAY, 500, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"fraud_labels_{DAY}.parquet", f"transactions_{DAY}.parquet"]
    labels = pq.read_table(tmp_path / f"fraud_labels_{DAY}.parquet")
    assert labels.schema == LABEL_SCHEMA and labels.num_rows > 0
    assert pq.read_table(path).num_rows == 500


def test_training_joins_only_known_labels_the_latest_wins():
    features = pa.table({"record_id": ["a", "b", "c"], "x": pa.array([1.0, 2.0, 3.0], pa.float32())})
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    labels = pa.table({"record_id": ["a", "b", "b"], "label": pa.array([1, 0, 1], pa.int8()),
                       "labelled_at": pa.array([t0, t0, t0 + dt.timedelta(days=3)], pa.timestamp("us", tz="UTC"))})
    joined = join_labels(features, labels)
    assert joined.column_names == ["record_id", "x", "label"]
    assert joined.to_pydict() == {"record_id": ["a", "b"], "x": [1.0, 2.0], "label": [1, 1]}
    clash = pa.concat_tables([labels, labels.slice(0, 1).set_column(1, "label", pa.array([0], pa.int8()))])
    with pytest.raises(ValueError, match="two different labels"):
        join_labels(features, clash)
