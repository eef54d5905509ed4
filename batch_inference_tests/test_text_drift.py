"""Embedding drift on synthetic vectors: thresholds, the sample-size rule, table plumbing.

Calibration on real embeddings of generated days is in test_text_embedding.py.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from batch_inference.quality.embedding_drift import (
    ALERT,
    INSUFFICIENT,
    OK,
    WARN,
    build_reference,
    chi2_quantile,
    compare_day,
    compare_tables,
    embedding_matrix,
)

DIM = 32


def _population(rng: np.random.Generator, rows: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    base = np.zeros(DIM)
    base[0] = 1.0
    direction = np.zeros(DIM)
    direction[1] = 1.0
    x = base + shift * direction + 0.6 * rng.normal(size=(rows, DIM))
    lengths = rng.lognormal(4.0 + shift, 0.8, size=rows)
    return x.astype(np.float32), lengths


def test_reference_is_json_and_describes_the_population() -> None:
    rng = np.random.default_rng(1)
    x, lengths = _population(rng, 2_000)
    ref = json.loads(json.dumps(build_reference(x, lengths, day_rows=500)))
    assert ref["rows"] == 2_000 and ref["dimension"] == DIM and ref["noise"]["rows"] == 500
    assert 0 < ref["noise"]["q50"] <= ref["noise"]["q99"] <= ref["noise"]["max"]
    assert len(ref["text_length"]["proportions"]) == len(ref["text_length"]["edges"]) + 1


def test_same_population_passes_shifted_alerts() -> None:
    rng = np.random.default_rng(2)
    ref = build_reference(*_population(rng, 3_000), day_rows=500)
    for _ in range(10):
        assert compare_day(ref, *_population(rng, 500)).status == OK
    shifted = compare_day(ref, *_population(rng, 500, shift=1.0))
    assert shifted.status == ALERT
    assert {m.metric for m in shifted.metrics} == {"centroid_cosine_distance", "text_length_psi"}


def test_the_output_blocks_the_text_length_warns_unless_critical() -> None:
    rng = np.random.default_rng(6)
    ref = build_reference(*_population(rng, 3_000), day_rows=500)
    x, _ = _population(rng, 500)
    _, longer = _population(rng, 500, shift=1.0)  # same topics, much longer texts
    report = compare_day(ref, x, longer)
    assert report.status == WARN and [m.status for m in report.metrics] == [OK, WARN]
    assert report.metrics[1].value > report.metrics[1].alert and report.metrics[1].role == "feature"
    assert compare_day(ref, x, longer, length_critical=True).status == ALERT


def test_small_days_are_judged_at_their_size_and_never_block() -> None:
    """Issue 20 item 7: a small day with an obvious shift was "insufficient sample", with no signal."""
    rng = np.random.default_rng(3)
    ref = build_reference(*_population(rng, 3_000), day_rows=500)
    tiny = compare_day(ref, *_population(rng, 20, shift=2.0))
    assert tiny.status == WARN and tiny.rows == 20, tiny.as_markdown()
    assert tiny.metrics[-1].metric == "rows" and tiny.metrics[-1].status == WARN
    for _ in range(10):
        clean = compare_day(ref, *_population(rng, 20))
        assert clean.status == INSUFFICIENT, clean.as_markdown()
        assert "centroid_cosine_distance" in clean.as_markdown()  # measured and shown, not silent
    assert compare_day(ref, np.zeros((0, DIM))).status == INSUFFICIENT
    small = compare_day(ref, *_population(rng, 120))
    large = compare_day(ref, *_population(rng, 5_000))
    assert small.metrics[0].warn >= large.metrics[0].warn
    assert small.metrics[1].warn >= large.metrics[1].warn >= 0.1
    assert abs(chi2_quantile(9) - 27.88) < 0.3  # the 99.9th percentile of chi-square(9)


def test_compare_tables_reads_arrow_columns() -> None:
    rng = np.random.default_rng(4)
    x, lengths = _population(rng, 1_000)
    ref = build_reference(x, lengths)
    ids = pa.array([f"r{i}" for i in range(400)])
    day_x, day_len = _population(rng, 400)
    embeddings = pa.table({"record_id": ids,
                           "embedding": pa.FixedSizeListArray.from_arrays(pa.array(day_x.reshape(-1)), DIM)})
    features = pa.table({"record_id": pa.concat_arrays([ids, pa.array(["quarantined"])]),
                         "text_length": np.append(day_len, 1e9)})
    assert np.allclose(embedding_matrix(embeddings.column("embedding")), day_x)
    report = compare_tables(ref, embeddings, features)
    assert report.rows == 400 and report.status == OK and len(report.metrics) == 2
    assert "centroid_cosine_distance" in report.as_markdown() and report.as_dict()["status"] == OK


def test_rejects_a_foreign_reference() -> None:
    with pytest.raises(ValueError, match="not an embedding drift reference"):
        compare_day({"edges": []}, np.zeros((500, DIM)))


def test_platform_drift_check_hook() -> None:
    """`drift_check` as the platform calls it: (pipeline, reference, lake store, date, thresholds)."""
    from types import SimpleNamespace

    from batch_inference.quality.embedding_drift import drift_check

    rng = np.random.default_rng(5)
    ref = build_reference(*_population(rng, 2_000), day_rows=300)
    x, lengths = _population(rng, 300, shift=2.0)
    ids = pa.array([f"r{i}" for i in range(300)])
    tables = {"embeddings": pa.table({"record_id": ids, "embedding": pa.FixedSizeListArray.from_arrays(
                  pa.array(x.reshape(-1)), DIM)}),
              "features": pa.table({"record_id": ids, "text_length": lengths})}

    class Store:  # the lake store's read interface, over in-memory tables
        def read(self, asset: str, date: str, columns: list[str]) -> pa.Table:
            return tables[asset].select(columns)

        def schema(self, asset: str, date: str) -> pa.Schema:
            return tables[asset].schema

    from batch_inference.plugins.heads import Embedding

    spec = SimpleNamespace(scoring=SimpleNamespace(asset="embeddings"), features=SimpleNamespace(asset="features"),
                           quality=SimpleNamespace(features={}))
    p = SimpleNamespace(spec=spec, row_key="record_id", head=Embedding(DIM))  # the Pipeline's attributes it reads
    status, metadata = drift_check(p, ref, Store(), "2026-01-05", SimpleNamespace(min_rows=100, psi_warn=0.1,
                                                                                   psi_alert=0.25),
                                   length_column="text_length")
    assert status == ALERT and metadata["rows"] == 300
    assert {"centroid_cosine_distance", "text_length_psi", "drift_table"} <= set(metadata)
    status, metadata = drift_check(p, ref, Store(), "2026-01-05", SimpleNamespace(min_rows=1_000),
                                   length_column="text_length")
    assert status == WARN and metadata["rows"] == 300  # a small day: judged at its size, warns at most
    from batch_inference.quality.drift import FeatureSettings

    spec.quality.features = {"text_length": FeatureSettings(exclude=True)}
    status, metadata = drift_check(p, ref, Store(), "2026-01-05", SimpleNamespace(min_rows=100),
                                   length_column="text_length")
    assert "text_length_psi" not in metadata  # excluded in the YAML
    x, _ = _population(rng, 300)
    tables["embeddings"] = pa.table({"record_id": ids, "embedding": pa.FixedSizeListArray.from_arrays(
        pa.array(x.reshape(-1)), DIM)})  # the same topics, the long texts: only the length moved
    spec.quality.features = {}
    assert drift_check(p, ref, Store(), "2026-01-05", SimpleNamespace(min_rows=100),
                       length_column="text_length")[0] == WARN
    spec.quality.features = {"text_length": FeatureSettings(critical=True)}
    assert drift_check(p, ref, Store(), "2026-01-05", SimpleNamespace(min_rows=100),
                       length_column="text_length")[0] == ALERT
