"""The pipelines declared in the defs folder, read from their YAML without loading Dagster.

For the tools outside Dagster (the CLI, the demo, the benchmark): which pipelines exist, their
landing entity and their data generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

DEFS_ROOT = Path(__file__).resolve().parent / "defs"


@dataclass(frozen=True)
class PipelineInfo:
    name: str
    folder: Path
    attributes: dict

    @property
    def landing_entity(self) -> str:
        inp = self.attributes.get("input", {})
        return inp.get("landing_entity") or inp.get("asset", "input")

    @property
    def generator(self) -> str | None:
        return self.attributes.get("input", {}).get("generator")

    @property
    def model_name(self) -> str:
        return self.attributes["registered_model"]["registered_name"]

    def asset(self, section: str, default: str) -> str:
        return self.attributes.get(section, {}).get("asset", default)


def discover(root: Path = DEFS_ROOT) -> dict[str, PipelineInfo]:
    """Every `BatchScoring` instance under `root`, by pipeline name (documents split by `---`)."""
    found: dict[str, PipelineInfo] = {}
    for path in sorted(root.rglob("defs.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if not document or not str(document.get("type", "")).endswith("BatchScoring"):
                continue
            attributes = document.get("attributes", {})
            found[attributes["name"]] = PipelineInfo(attributes["name"], path.parent, attributes)
    return found


def default_pipeline() -> str:
    """The first pipeline (by name) whose YAML names a data generator: what the CLI uses by default."""
    return next(name for name, info in sorted(discover().items()) if info.generator)


def write_landing_file(date: str, rows: int, landing_dir: Path, pipeline: str | None = None, **options) -> Path:
    """Generate one day of a pipeline's landing data with the generator its YAML names."""
    from batch_inference.plugins.loading import load_object

    pipeline = pipeline or default_pipeline()
    info = discover().get(pipeline)
    if info is None or not info.generator:
        raise ValueError(f"pipeline {pipeline!r} has no data generator (known: {', '.join(discover())})")
    return load_object(info.generator)(date, rows, landing_dir, **options)
