"""The engine alone: same scores as an unbatched reference, every row once, streaming."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from batch_inference.defs.card_fraud.network import RiskMLP
from batch_inference.inference.engine import (
    EngineConfig,
    InferenceEngine,
    Provenance,
    RejectedRows,
    iter_batches,
)
from batch_inference.plugins.heads import Probability
from batch_inference.plugins.tabular import FloatMatrix

FEATURES = tuple(f"f{i:02d}" for i in range(8))


def _model(seed: int = 0) -> RiskMLP:
    torch.manual_seed(seed)
    m = RiskMLP(len(FEATURES), (16, 16))
    m.mean.copy_(torch.linspace(-1, 1, len(FEATURES)))
    m.std.copy_(torch.linspace(0.5, 2, len(FEATURES)))
    return m.eval()


def _table(rows: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    cols = {"record_id": pa.array([f"r{i}" for i in range(rows)], pa.string())}
    for name in FEATURES:
        cols[name] = pa.array(rng.normal(size=rows).astype(np.float32))
    return pa.table(cols)


def _reference(table: pa.Table) -> dict[str, float]:
    x = np.stack([table.column(n).to_numpy() for n in FEATURES], axis=1).astype(np.float32)
    with torch.no_grad():
        p = torch.sigmoid(_model()(torch.from_numpy(x))).numpy()
    return dict(zip(table.column("record_id").to_pylist(), p.tolist(), strict=True))


def _run(table: pa.Table, read_rows: int, forward_rows: int, reject=None):
    out: list[pa.RecordBatch] = []
    engine = InferenceEngine(_model(), FloatMatrix(FEATURES), Probability(),
                             EngineConfig(read_batch_rows=read_rows, forward_rows=forward_rows, device="cpu"))
    result = engine.run(table.to_batches(max_chunksize=read_rows), out.append,
                        Provenance("m", "3", "run-1"), reject=reject)
    return result, pa.Table.from_batches(out, schema=engine.output_schema)


@pytest.mark.parametrize(("read_rows", "forward_rows"), [(1, 1), (7, 3), (1000, 64), (4096, 8192)])
def test_matches_unbatched_reference_at_any_batch_boundary(read_rows, forward_rows):
    table = _table(2_345)
    result, out = _run(table, read_rows, forward_rows)
    ref = _reference(table)
    got = dict(zip(out.column("record_id").to_pylist(), out.column("score").to_pylist(), strict=True))
    assert result.rows_in == result.rows_scored == out.num_rows == table.num_rows
    assert got.keys() == ref.keys()  # every row exactly once, none invented
    np.testing.assert_allclose([got[k] for k in ref], list(ref.values()), rtol=1e-5, atol=1e-6)
    assert set(out.column("model_version").to_pylist()) == {"3"}
    assert set(out.column("run_id").to_pylist()) == {"run-1"}
    assert len(set(out.column("scored_at").to_pylist())) == 1


def test_empty_input():
    result, out = _run(_table(0), 100, 10)
    assert result.rows_in == 0 and out.num_rows == 0


def test_non_finite_rows_are_rejected_with_reason_not_dropped():
    table = _table(50)
    col = table.column("f03").to_numpy().copy()
    col[[4, 9]] = np.nan
    table = table.set_column(3 + 1, "f03", pa.array(col))
    rejected: list[RejectedRows] = []
    result, out = _run(table, 16, 8, reject=rejected.append)
    ids = [r for chunk in rejected for r in chunk.record_ids]
    assert ids == ["r4", "r9"]
    assert "f03" in rejected[0].reasons[0]
    assert result.rows_rejected == 2 and out.num_rows == 48
    assert set(out.column("record_id").to_pylist()) | set(ids) == set(table.column("record_id").to_pylist())


def test_writer_failure_propagates():
    engine = InferenceEngine(_model(), FloatMatrix(FEATURES), Probability(), EngineConfig(device="cpu", read_batch_rows=10))

    def broken(_batch):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        engine.run(_table(100).to_batches(max_chunksize=10), broken, Provenance("m", "1", "r"))


def test_reader_failure_propagates():
    def batches():
        yield _table(10).to_batches()[0]
        raise ValueError("truncated file")

    engine = InferenceEngine(_model(), FloatMatrix(FEATURES), Probability(), EngineConfig(device="cpu"))
    with pytest.raises(ValueError, match="truncated"):
        engine.run(batches(), lambda b: None, Provenance("m", "1", "r"))


def test_streams_from_parquet(tmp_path):
    table = _table(10_000)
    pq.write_table(table, tmp_path / "f.parquet", row_group_size=1_000)
    source = pq.ParquetFile(tmp_path / "f.parquet")
    out: list[pa.RecordBatch] = []
    engine = InferenceEngine(_model(), FloatMatrix(FEATURES), Probability(), EngineConfig(device="cpu"))
    batches = iter_batches(source, 1_500, ["record_id", *FEATURES])
    result = engine.run(batches, out.append, Provenance("m", "1", "r"))
    assert result.rows_scored == 10_000
    assert max(b.num_rows for b in out) <= 1_500  # never the whole file at once


def test_scores_do_not_depend_on_row_order():
    table = _table(3_000)
    shuffled = table.take(pa.array(np.random.default_rng(5).permutation(table.num_rows)))
    _, a = _run(table, 512, 128)
    _, b = _run(shuffled, 700, 256)
    score_a = dict(zip(a.column("record_id").to_pylist(), a.column("score").to_pylist(), strict=True))
    score_b = dict(zip(b.column("record_id").to_pylist(), b.column("score").to_pylist(), strict=True))
    assert score_a.keys() == score_b.keys()
    np.testing.assert_allclose([score_b[k] for k in score_a], list(score_a.values()), rtol=1e-5, atol=1e-6)


def test_reads_one_row_group_at_a_time(tmp_path):
    pq.write_table(_table(10_000), tmp_path / "f.parquet", row_group_size=4_000)
    batches = list(iter_batches(pq.ParquetFile(tmp_path / "f.parquet"), 3_000, ["record_id"]))
    assert [b.num_rows for b in batches] == [3_000, 1_000, 3_000, 1_000, 2_000]
