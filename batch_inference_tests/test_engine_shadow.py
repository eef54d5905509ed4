"""A challenger scored in shadow by the engine: one read of the batches, two models, each its own output."""

import numpy as np
import pyarrow as pa
import pytest
import torch

from batch_inference.defs.card_fraud.network import RiskMLP
from batch_inference.inference.engine import EngineConfig, InferenceEngine, Provenance
from batch_inference.plugins.heads import Probability
from batch_inference.plugins.tabular import FloatMatrix

FEATURES = tuple(f"f{i:02d}" for i in range(6))


def _model(seed: int, n: int = len(FEATURES)) -> RiskMLP:
    torch.manual_seed(seed)
    return RiskMLP(n, (16,)).eval()


def _table(rows: int) -> pa.Table:
    rng = np.random.default_rng(5)
    cols = {"record_id": pa.array([f"r{i}" for i in range(rows)], pa.string())}
    for name in (*FEATURES, "extra"):
        cols[name] = pa.array(rng.normal(size=rows).astype(np.float32))
    return pa.table(cols)


def _alone(model, adapter, table):
    out: list[pa.RecordBatch] = []
    engine = InferenceEngine(model, adapter, Probability(), EngineConfig(device="cpu"))
    engine.run(table.to_batches(max_chunksize=100), out.append, Provenance("m", "1", "r"))
    return pa.Table.from_batches(out).column("score").to_numpy()


@pytest.mark.parametrize("own_adapter", [False, True])
def test_shadow_outputs_equal_each_model_alone_from_one_read(own_adapter):
    table = _table(1_003)
    champion, challenger = _model(1), _model(2, len(FEATURES) + 1 if own_adapter else len(FEATURES))
    challenger_adapter = FloatMatrix((*FEATURES, "extra")) if own_adapter else FloatMatrix(FEATURES)
    reads = []

    def batches():
        for batch in table.to_batches(max_chunksize=100):
            reads.append(batch.num_rows)
            yield batch

    engine = InferenceEngine(champion, FloatMatrix(FEATURES), Probability(), EngineConfig(device="cpu"))
    engine.with_shadow(InferenceEngine(challenger, challenger_adapter, Probability(), EngineConfig(device="cpu")))
    assert engine.columns == ((*FEATURES, "extra") if own_adapter else FEATURES)
    main, shadow = [], []
    result = engine.run(batches(), main.append, Provenance("m", "1", "r"), shadow_write=shadow.append,
                        shadow_provenance=Provenance("m", "2", "r"))
    assert sum(reads) == 1_003  # every batch read once for both models
    main_t, shadow_t = pa.Table.from_batches(main), pa.Table.from_batches(shadow)
    assert main_t.column("record_id").equals(shadow_t.column("record_id"))
    assert set(shadow_t.column("model_version").to_pylist()) == {"2"}
    np.testing.assert_array_equal(main_t.column("score").to_numpy(), _alone(champion, FloatMatrix(FEATURES), table))
    np.testing.assert_array_equal(shadow_t.column("score").to_numpy(), _alone(challenger, challenger_adapter, table))
    assert result.shadow_forward_seconds > 0


def test_a_shadow_needs_its_writer():
    engine = InferenceEngine(_model(1), FloatMatrix(FEATURES), Probability(), EngineConfig(device="cpu"))
    engine.with_shadow(InferenceEngine(_model(2), FloatMatrix(FEATURES), Probability(), EngineConfig(device="cpu")))
    with pytest.raises(ValueError, match="shadow_write"):
        engine.run(iter(()), lambda b: None, Provenance("m", "1", "r"))
