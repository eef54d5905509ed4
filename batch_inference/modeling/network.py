"""The scoring network and its on-disk format (safetensors weights + JSON config, no pickle)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from batch_inference.modeling.artifact import CONFIG_FILE, WEIGHTS_FILE, ModelConfig, sha256_file


class RiskMLP(nn.Module):
    """Standardise, then a ReLU MLP to one logit. `forward` returns logits."""

    def __init__(self, n_features: int, hidden_sizes: Sequence[int] = (256, 256)) -> None:
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std).squeeze(-1)

    def fold_normalization(self) -> RiskMLP:
        """Fold the standardisation into the first layer (same outputs, one op less)."""
        first = self.net[0]
        assert isinstance(first, nn.Linear)
        with torch.no_grad():
            scaled = first.weight / self.std
            first.bias -= scaled @ self.mean
            first.weight.copy_(scaled)
            self.mean.zero_()
            self.std.fill_(1.0)
        return self


def save_model(model: RiskMLP, config: ModelConfig, directory: Path) -> dict[str, str]:
    """Write weights and config into `directory`; return their SHA-256 digests."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": config.format})
    (directory / CONFIG_FILE).write_text(config.to_json())
    return {
        "weights_sha256": sha256_file(directory / WEIGHTS_FILE),
        "config_sha256": sha256_file(directory / CONFIG_FILE),
    }


def load_model(directory: Path) -> tuple[RiskMLP, ModelConfig]:
    """Rebuild the network from config and load safetensors weights (no pickle involved)."""
    config = ModelConfig.from_json((directory / CONFIG_FILE).read_text())
    model = RiskMLP(len(config.features), config.hidden_sizes)
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), strict=True)
    return model.eval(), config
