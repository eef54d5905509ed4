"""Training the card-fraud MLP on labelled feature rows, and the model builder the pipeline names."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from batch_inference.defs.card_fraud.network import MODEL_FORMAT, RiskMLP, model_config, save_model
from batch_inference.modeling.artifact import REFERENCE_FILE
from batch_inference.plugins.protocols import LoadedArtifact, TrainedArtifact, TrainingRequest
from batch_inference.quality.labels import latest_labels
from batch_inference.quality.performance import roc_auc
from batch_inference.quality.reference import build_reference


@dataclass
class TrainingParams:
    hidden_sizes: tuple[int, ...] = (256, 256)
    epochs: int = 4
    batch_size: int = 1024
    learning_rate: float = 2e-3
    max_rows: int = 400_000
    holdout_fraction: float = 0.2
    seed: int = 7


@dataclass
class TrainedModel:
    model: RiskMLP
    config: dict
    metrics: dict[str, float]
    reference: dict = field(default_factory=dict)
    holdout_x: np.ndarray | None = None
    holdout_y: np.ndarray | None = None


def to_matrix(table: pa.Table, features: tuple[str, ...]) -> np.ndarray:
    """Stack feature columns into a C-contiguous float32 matrix (rows x features)."""
    cols = [table.column(name).to_numpy(zero_copy_only=False).astype(np.float32, copy=False) for name in features]
    return np.ascontiguousarray(np.vstack(cols).T)


def holdout_mask(record_ids: pa.ChunkedArray, fraction: float) -> np.ndarray:
    """Deterministic hold-out split by a hash of record_id, stable across retrains."""
    buckets = np.fromiter((zlib.crc32(r.encode()) % 1000 for r in record_ids.to_pylist()), np.int64)
    return buckets < int(fraction * 1000)


def score(model: nn.Module, x: np.ndarray, batch_size: int = 65_536) -> np.ndarray:
    """Probabilities for a matrix, in batches (reference path for evaluation)."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            out.append(torch.sigmoid(model(torch.from_numpy(x[start:start + batch_size]))).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def train(table: pa.Table, features: tuple[str, ...], params: TrainingParams | None = None,
          key: str = "record_id") -> TrainedModel:
    """Train on labelled rows of `table`; evaluate on a deterministic hold-out split (by row key)."""
    params = params or TrainingParams()
    if table.num_rows == 0:
        raise ValueError("no labelled feature rows to train on")
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    is_holdout = holdout_mask(table.column(key), params.holdout_fraction)
    x_all = to_matrix(table, features)
    y_all = table.column("label").to_numpy(zero_copy_only=False).astype(np.float32)
    x_train, y_train = x_all[~is_holdout], y_all[~is_holdout]
    x_hold, y_hold = x_all[is_holdout], y_all[is_holdout]
    if len(x_train) > params.max_rows:
        keep = rng.choice(len(x_train), params.max_rows, replace=False)
        x_train, y_train = x_train[keep], y_train[keep]

    model = RiskMLP(len(features), params.hidden_sizes)
    model.mean.copy_(torch.from_numpy(x_train.mean(axis=0)))
    model.std.copy_(torch.from_numpy(np.maximum(x_train.std(axis=0), 1e-6)))
    optimiser = torch.optim.Adam(model.parameters(), lr=params.learning_rate)
    loss_fn = nn.BCEWithLogitsLoss()
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    model.train()
    for _ in range(params.epochs):
        perm = torch.from_numpy(rng.permutation(len(xt)))
        for start in range(0, len(xt), params.batch_size):
            idx = perm[start:start + params.batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            optimiser.step()
    model.eval()

    hold_scores = score(model, x_hold)
    eps = 1e-7
    log_loss = float(-np.mean(y_hold * np.log(hold_scores + eps) + (1 - y_hold) * np.log(1 - hold_scores + eps)))
    metrics = {
        "holdout_auc": roc_auc(y_hold, hold_scores),
        "holdout_log_loss": log_loss,
        "train_rows": float(len(x_train)),
        "holdout_rows": float(len(x_hold)),
        "positive_rate": float(y_all.mean()),
    }
    reference = build_reference({n: x_train[:, i] for i, n in enumerate(features)}, score(model, x_train[:100_000]),
                                "score")  # the Probability head's output column
    return TrainedModel(model, model_config(features, params.hidden_sizes), metrics, reference, x_hold, y_hold)


def join_labels(features: pa.Table, labels: pa.Table, key: str = "record_id") -> pa.Table:
    """The feature rows whose label is known, with it as `label` (the latest one when a row has several).

    Rows without a label yet are left out: a chargeback may still come.
    """
    latest = latest_labels(labels, key)
    base = features.drop_columns(["label"]) if "label" in features.column_names else features
    joined = base.join(latest, key, join_type="inner")
    return joined.sort_by(key).select([*base.column_names, "label"])


def feature_columns(table: pa.Table, key: str = "record_id") -> tuple[str, ...]:
    """Every float feature column of the features table (all but the row key and `label`)."""
    return tuple(n for n in table.column_names if n not in (key, "label"))


def build_model(request: TrainingRequest) -> TrainedArtifact:
    """The pipeline's model builder: train on the window's features, write a registrable version."""
    if request.features is None or request.features.num_rows == 0:
        raise ValueError("no feature rows to train on: materialize the input and features first")
    if request.labels is None or request.labels.num_rows == 0:
        raise ValueError(f"no labels known for {request.window[0]}..{request.window[-1]}: land the "
                         "fraud_labels files and materialize the labels asset first")
    labelled = join_labels(request.features, request.labels, request.key)
    if labelled.num_rows == 0:
        raise ValueError(f"none of the {request.features.num_rows} feature rows has a known label yet")
    options = dict(request.params)
    features = tuple(options.pop("features", None) or feature_columns(labelled, request.key))  # or a subset
    params = TrainingParams(**{k: tuple(v) if k == "hidden_sizes" else v for k, v in options.items()})
    trained = train(labelled, features, params, key=request.key)
    directory = request.workdir / "model"
    save_model(trained.model, trained.config, directory)
    (directory / REFERENCE_FILE).write_text(json.dumps(trained.reference))
    holdout_x, holdout_y = trained.holdout_x, trained.holdout_y

    def evaluate(loaded: LoadedArtifact) -> float:
        features = tuple(loaded.config["features"])
        if features != trained.config["features"] or holdout_x is None:
            return float("-inf")  # trained on other features: not comparable, so not better
        return roc_auc(holdout_y, score(loaded.module, holdout_x))

    metrics = {**trained.metrics, "unlabelled_rows": float(request.features.num_rows - labelled.num_rows)}
    return TrainedArtifact(directory, MODEL_FORMAT, metrics,
                           {"window": f"{request.window[0]}..{request.window[-1]}", "days": len(request.window),
                            "hidden_sizes": list(params.hidden_sizes), "epochs": params.epochs}, evaluate)
