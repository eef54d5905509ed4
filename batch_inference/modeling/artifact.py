"""The model artifact's format, without importing torch: file names, config and digests."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

MODEL_FORMAT = "batch_inference.mlp.v1"
WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network from code: no code is stored with the weights."""

    features: tuple[str, ...]
    hidden_sizes: tuple[int, ...] = (256, 256)
    format: str = MODEL_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        data = json.loads(text)
        if data.get("format") != MODEL_FORMAT:
            raise ValueError(f"unsupported model format {data.get('format')!r}, expected {MODEL_FORMAT!r}")
        return cls(
            features=tuple(str(f) for f in data["features"]),
            hidden_sizes=tuple(int(h) for h in data["hidden_sizes"]),
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
