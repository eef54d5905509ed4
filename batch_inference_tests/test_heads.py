"""Output heads on their own and through the engine: the Regression head."""

import numpy as np
import pyarrow as pa
import pytest
import torch

from batch_inference.inference.engine import EngineConfig, InferenceEngine, Provenance
from batch_inference.plugins.heads import Regression
from batch_inference.plugins.tabular import FloatMatrix


def test_regression_keeps_the_models_scale_and_clips_only_when_asked():
    raw = torch.tensor([[-2.5], [0.0], [3.25], [1e4]])
    assert Regression().transform(raw).tolist() == [-2.5, 0.0, 3.25, 1e4]
    assert Regression(min_value=0.0).transform(raw).tolist() == [0.0, 0.0, 3.25, 1e4]
    assert Regression(min_value=0.0, max_value=100.0).transform(raw).tolist() == [0.0, 0.0, 3.25, 100.0]
    assert Regression().fields() == [pa.field("prediction", pa.float32())]
    assert Regression(column="units").fields()[0].name == "units"
    (column,) = Regression().to_columns(np.array([1.5, -2.0], np.float64))
    assert column.type == pa.float32() and column.to_pylist() == [1.5, -2.0]


def test_regression_refuses_inverted_bounds():
    with pytest.raises(ValueError, match="min_value 5.0 is above max_value 1.0"):
        Regression(min_value=5.0, max_value=1.0)


def test_regression_through_the_engine_writes_each_rows_value():
    model = torch.nn.Linear(2, 1).eval()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0, -1.0]]))
        model.bias.fill_(0.5)
    table = pa.table({"record_id": [f"r{i}" for i in range(5)],
                      "a": pa.array([0, 1, 2, 3, 4], pa.float32()), "b": pa.array([4, 3, 2, 1, 0], pa.float32())})
    engine = InferenceEngine(model, FloatMatrix(("a", "b")), Regression(min_value=0.0),
                             EngineConfig(device="cpu", read_batch_rows=2, forward_rows=1))
    out: list[pa.RecordBatch] = []
    engine.run(table.to_batches(max_chunksize=2), out.append, Provenance("m", "1", "run-1"))
    scored = pa.Table.from_batches(out, schema=engine.output_schema)
    assert scored.schema.field("prediction").type == pa.float32()
    # 2a - b + 0.5: -3.5 (clipped to 0), -0.5 (clipped), 2.5, 5.5, 8.5
    assert dict(zip(scored.column("record_id").to_pylist(), scored.column("prediction").to_pylist(), strict=True)) \
        == {"r0": 0.0, "r1": 0.0, "r2": 2.5, "r3": 5.5, "r4": 8.5}
