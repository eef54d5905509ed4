"""The support-tickets generator, its landing writer, features.sql and the pandera schemas."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pandera.errors
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from batch_inference.defs.support_tickets.generator import (
    CATEGORIES,
    CHANNELS,
    TICKETS_SCHEMA,
    generate_tickets,
    write_landing,
)
from batch_inference.defs.support_tickets.schemas import (
    FEATURE_COLUMNS,
    EmbeddingsSchema,
    TicketFeaturesSchema,
    TicketsSchema,
)

FEATURES_SQL = (Path(__file__).parents[1] / "batch_inference/defs/support_tickets/features.sql").read_text()
DAY = "2026-01-05"


def _pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)


def _features(table: pa.Table) -> pa.Table:
    con = duckdb.connect()
    con.register("input", table)
    return con.sql(FEATURES_SQL).arrow().read_all()


def test_deterministic_per_date() -> None:
    a, b = generate_tickets(DAY, 2_000), generate_tickets(DAY, 2_000)
    assert a.equals(b)
    assert a.schema == TICKETS_SCHEMA
    assert not a.column("text").equals(generate_tickets("2026-01-06", 2_000).column("text"))


def test_clean_day_shape_and_variety() -> None:
    table = generate_tickets(DAY, 5_000)
    ids = table.column("ticket_id").to_pylist()
    assert len(set(ids)) == len(ids) and table.column("text").null_count == 0
    start = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    times = table.column("created_at").to_pylist()
    assert all(start <= t < start + dt.timedelta(days=1) for t in times) and times == sorted(times)
    assert set(table.column("channel").to_pylist()) == set(CHANNELS)
    assert set(table.column("category").to_pylist()) == set(CATEGORIES)
    texts = table.column("text").to_pylist()
    lengths = np.array([len(t) for t in texts])
    assert (lengths == 0).sum() > 10  # empty strings
    assert (lengths < 20).mean() > 0.03 and (lengths > 1_500).sum() > 50  # short pings, long threads
    assert any(any("\u3040" <= ch <= "\u9fff" for ch in t) for t in texts)  # CJK
    assert any(any(ord(ch) >= 0x1F300 for ch in t) for t in texts)  # emoji
    assert any(ch in t for t in texts for ch in "éëöçñ")  # accents


def test_corrupt_rows_are_null_text_and_duplicate_ids() -> None:
    clean = generate_tickets(DAY, 3_000)
    bad = generate_tickets(DAY, 3_000, corrupt_rate=0.05)
    nulls = bad.column("text").null_count
    duplicates = bad.num_rows - len(set(bad.column("ticket_id").to_pylist()))
    assert 30 < nulls < 130 and 30 < duplicates < 130
    # Untouched rows are the clean day's rows.
    same = pc.equal(clean.column("text"), bad.column("text")).to_numpy(zero_copy_only=False)
    assert np.nansum(same.astype(float)) >= 3_000 - nulls - 1


def test_drift_moves_the_topic_and_language() -> None:
    drifted = generate_tickets(DAY, 1_000, drift=1.0).column("text").to_pylist()
    assert sum("thermostat" in t.lower() or "termostato" in t.lower() for t in drifted) > 500
    half = generate_tickets(DAY, 1_000, drift=0.5).column("text").to_pylist()
    clean = generate_tickets(DAY, 1_000).column("text").to_pylist()
    changed = sum(a != b for a, b in zip(half, clean, strict=True))
    assert 400 < changed < 600


def test_write_landing_is_atomic_and_named_by_date(tmp_path: Path) -> None:
    path = write_landing(DAY, 500, tmp_path / "landing")
    assert path.name == "tickets_2026-01-05.parquet"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    assert pq.read_table(path).equals(generate_tickets(DAY, 500))


def test_schemas_pass_clean_data_and_flag_corrupt_rows() -> None:
    clean = generate_tickets(DAY, 2_000)
    TicketsSchema.validate(_pandas(clean), lazy=True)
    with pytest.raises(pandera.errors.SchemaErrors) as caught:
        TicketsSchema.validate(_pandas(generate_tickets(DAY, 2_000, corrupt_rate=0.05)), lazy=True)
    assert {"text", "ticket_id"} <= set(caught.value.failure_cases["column"].dropna())


def test_features_sql_matches_schema() -> None:
    features = _features(generate_tickets(DAY, 2_000))
    assert tuple(features.column_names) == FEATURE_COLUMNS
    TicketFeaturesSchema.validate(_pandas(features), lazy=True)
    texts = features.column("text").to_pylist()
    lengths = features.column("text_length").to_numpy()
    assert np.array_equal(lengths, np.array([len(t) for t in texts], dtype=np.float32))  # code points


def test_embeddings_schema_checks_vectors() -> None:
    n, rng = 4, np.random.default_rng(0)
    vectors = rng.normal(size=(n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    now = dt.datetime(2026, 1, 6, tzinfo=dt.UTC)

    def table(v: np.ndarray) -> pa.Table:
        return pa.table({
            "record_id": [f"tk-{i}" for i in range(n)],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), 384),
            "model_name": ["minilm"] * n, "model_version": ["3"] * n,
            "scored_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")), "run_id": ["r"] * n,
        })

    EmbeddingsSchema.validate(_pandas(table(vectors)), lazy=True)
    vectors[1] *= 2.0
    with pytest.raises(pandera.errors.SchemaErrors):
        EmbeddingsSchema.validate(_pandas(table(vectors)), lazy=True)
