"""Training the store-demand regressor, and the model builder the pipeline names.

The drift reference records the forecast and every feature; how each is compared (the calendar
features value by value, the same-weekday mean against past same weekdays) is the YAML's
`quality.features`.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from batch_inference.defs.store_demand.network import MODEL_FORMAT, DemandMLP, model_config, save_model
from batch_inference.modeling.artifact import REFERENCE_FILE
from batch_inference.plugins.protocols import LoadedArtifact, TrainedArtifact, TrainingRequest
from batch_inference.plugins.tabular import feature_matrix
from batch_inference.quality.reference import build_reference

PREDICTION_COLUMN = "prediction"  # the Regression head's output column


@dataclass
class TrainingParams:
    hidden_sizes: tuple[int, ...] = (64, 64)
    epochs: int = 8
    batch_size: int = 512
    learning_rate: float = 3e-3
    holdout_fraction: float = 0.2
    seed: int = 11


def holdout_mask(keys: pa.ChunkedArray, fraction: float) -> np.ndarray:
    """Deterministic hold-out split by a hash of the row key, stable across retrains."""
    buckets = np.fromiter((zlib.crc32(str(k).encode()) % 1000 for k in keys.to_pylist()), np.int64)
    return buckets < int(fraction * 1000)


def predict(model: DemandMLP, x: np.ndarray, batch_size: int = 65_536) -> np.ndarray:
    with torch.inference_mode():
        out = [model(torch.from_numpy(x[s:s + batch_size])).numpy() for s in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def mean_absolute_error(y: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(np.abs(y - forecast))) if len(y) else float("nan")


def train(table: pa.Table, features: tuple[str, ...], params: TrainingParams, key: str) -> tuple[DemandMLP, dict,
                                                                                              np.ndarray, np.ndarray]:
    """Fit log(1 + units) by MSE; (model, metrics, hold-out matrix, hold-out units)."""
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    is_holdout = holdout_mask(table.column(key), params.holdout_fraction)
    x_all = np.ascontiguousarray(feature_matrix(table, features))
    y_all = table.column("label").to_numpy(zero_copy_only=False).astype(np.float32)
    x_train, y_train = x_all[~is_holdout], y_all[~is_holdout]
    model = DemandMLP(len(features), params.hidden_sizes)
    model.mean.copy_(torch.from_numpy(x_train.mean(axis=0, dtype=np.float64).astype(np.float32)))
    spread = x_train.std(axis=0, dtype=np.float64)
    # A feature constant in the window (the weekday, when it holds one day) is centred, not scaled:
    # dividing by ~0 would turn the next day's value into an infinite forecast.
    model.std.copy_(torch.from_numpy(np.where(spread > 1e-4, spread, 1.0).astype(np.float32)))
    optimiser = torch.optim.Adam(model.parameters(), lr=params.learning_rate)
    xt, yt = torch.from_numpy(x_train), torch.log1p(torch.from_numpy(y_train))
    model.train()
    for _ in range(params.epochs):
        perm = torch.from_numpy(rng.permutation(len(xt)))
        for start in range(0, len(xt), params.batch_size):
            idx = perm[start:start + params.batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model.log_units(xt[idx]), yt[idx])
            loss.backward()
            optimiser.step()
    model.eval()
    x_hold, y_hold = x_all[is_holdout], y_all[is_holdout]
    naive = np.expm1(x_hold[:, features.index("log_mean_7")]) if "log_mean_7" in features else None
    metrics = {"holdout_mae": mean_absolute_error(y_hold, predict(model, x_hold)),
               "train_rows": float(len(x_train)), "holdout_rows": float(len(x_hold)),
               "mean_units": float(y_all.mean())}
    if naive is not None:  # the 7-day mean as a forecast: what the model must beat
        metrics["holdout_mae_mean_7"] = mean_absolute_error(y_hold, naive)
    return model, metrics, x_hold, y_hold


def drift_reference(x: np.ndarray, features: tuple[str, ...], forecast: np.ndarray) -> dict:
    """The forecast and every feature, from the same rows."""
    return build_reference({n: x[:, i] for i, n in enumerate(features)}, forecast, PREDICTION_COLUMN)


def build_model(request: TrainingRequest) -> TrainedArtifact:
    """The pipeline's model builder: train on the window's features, write a registrable version."""
    if request.features is None or request.features.num_rows == 0:
        raise ValueError("no labelled feature rows to train on: materialize the input and features first")
    options = dict(request.params)
    features = tuple(options.pop("features", None)
                     or [n for n in request.features.column_names if n not in (request.key, "label")])
    params = TrainingParams(**{k: tuple(v) if k == "hidden_sizes" else v for k, v in options.items()})
    model, metrics, x_hold, y_hold = train(request.features, features, params, request.key)
    sample = np.ascontiguousarray(feature_matrix(request.features.slice(0, 100_000), features))
    directory = request.workdir / "model"
    config = model_config(features, params.hidden_sizes)
    save_model(model, config, directory)
    (directory / REFERENCE_FILE).write_text(json.dumps(drift_reference(sample, features, predict(model, sample))))

    def evaluate(loaded: LoadedArtifact) -> float:
        """Minus the hold-out MAE (higher is better); another feature list is not comparable."""
        if tuple(loaded.config["features"]) != features:
            return float("-inf")
        return -mean_absolute_error(y_hold, predict(loaded.module, x_hold))

    return TrainedArtifact(directory, MODEL_FORMAT, metrics,
                           {"window": f"{request.window[0]}..{request.window[-1]}", "days": len(request.window),
                            "hidden_sizes": list(params.hidden_sizes), "epochs": params.epochs}, evaluate)
