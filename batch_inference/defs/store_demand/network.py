"""The store-demand regressor and its on-disk format (safetensors weights + JSON config, no pickle).

It learns log(1 + units) and `forward` returns units, so the `Regression` head writes the forecast
on the business scale.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from batch_inference.modeling.artifact import CONFIG_FILE
from batch_inference.plugins.protocols import LoadedArtifact

MODEL_FORMAT = "store_demand.demand_mlp.v1"
WEIGHTS_FILE = "weights.safetensors"


class DemandMLP(nn.Module):
    """Standardise, a ReLU MLP to log(1 + units); `forward` returns units (>= 0)."""

    def __init__(self, n_features: int, hidden_sizes: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def log_units(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.expm1(self.log_units(x)).clamp(min=0.0)


def model_config(features: Sequence[str], hidden_sizes: Sequence[int]) -> dict:
    """Everything needed to rebuild the network from code: no code is stored with the weights."""
    return {"format": MODEL_FORMAT, "features": list(features), "hidden_sizes": [int(h) for h in hidden_sizes]}


def save_model(model: DemandMLP, config: dict, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": MODEL_FORMAT})
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))


class DemandMLPFormat:
    """Loader of `store_demand.demand_mlp.v1`: rebuild the network from config, load safetensors."""

    tag = MODEL_FORMAT

    def load(self, directory: Path, files: Mapping[str, str]) -> LoadedArtifact:
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if name not in files:
                raise ValueError(f"{name} is not among the version's verified files")
        config = json.loads((directory / CONFIG_FILE).read_text())
        if config.get("format") != MODEL_FORMAT:
            raise ValueError(f"config format {config.get('format')!r}, expected {MODEL_FORMAT!r}")
        model = DemandMLP(len(config["features"]), config["hidden_sizes"])
        model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), strict=True)
        return LoadedArtifact(model.eval(), config)
