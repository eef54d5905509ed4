"""The pipelines declared in the defs folder, for the tools outside Dagster's code location.

The CLI, the demo and the benchmarks read each `defs.yaml` document into the same model the
component loads (`BatchScoring`), so they see the same fields and the same defaults, and get a
`Pipeline` (spec + folder) as the asset builders do.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from batch_inference.components.pipeline import Pipeline

DEFS_ROOT = Path(__file__).resolve().parent / "defs"


class PipelineYamlError(ValueError):
    """A `defs.yaml` document that is not a valid `BatchScoring` instance."""


def discover(root: Path = DEFS_ROOT) -> dict[str, Pipeline]:
    """Every `BatchScoring` instance under `root`, by pipeline name (documents split by `---`)."""
    from batch_inference.components.batch_scoring import BatchScoring

    found: dict[str, Pipeline] = {}
    for path in sorted(root.rglob("defs.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if not document or not str(document.get("type", "")).endswith("BatchScoring"):
                continue
            try:
                spec = BatchScoring.model_validate(document.get("attributes") or {})
            except ValidationError as exc:
                raise PipelineYamlError(f"{path}: invalid BatchScoring attributes: {exc}") from None
            if spec.name in found:
                raise PipelineYamlError(f"{path}: pipeline name {spec.name!r} is also declared in "
                                        f"{found[spec.name].root / 'defs.yaml'}")
            found[spec.name] = Pipeline(spec, path.parent)
    return found


def declared_pipelines(root: Path = DEFS_ROOT) -> dict[str, list[tuple[Path, int]]]:
    """Where each `BatchScoring` name is declared under `root`: (file, line of `name:`), from the raw
    YAML, so that a name declared twice is reported with both files before anything else."""
    from batch_inference.components.load_validation import yaml_locator

    found: dict[str, list[tuple[Path, int]]] = {}
    for path in sorted(root.rglob("defs.yaml")):
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue  # the loader reports a YAML syntax error with its position
        for index, document in enumerate(documents):
            if not isinstance(document, dict) or not str(document.get("type", "")).endswith("BatchScoring"):
                continue
            name = (document.get("attributes") or {}).get("name")
            if isinstance(name, str):
                found.setdefault(name, []).append((path, yaml_locator(path, index)(("name",))[1]))
    return found


def default_pipeline() -> str:
    """The first pipeline (by name) whose YAML names a data generator: what the CLI uses by default."""
    return next(name for name, p in sorted(discover().items()) if p.spec.input.generator)


def write_landing_file(date: str, rows: int, landing_dir: Path, pipeline: str | None = None, **options) -> Path:
    """Generate one day of a pipeline's landing data with the generator its YAML names."""
    from batch_inference.plugins.loading import load_object

    pipeline = pipeline or default_pipeline()
    found = discover().get(pipeline)
    if found is None or not found.spec.input.generator:
        raise ValueError(f"pipeline {pipeline!r} has no data generator (known: {', '.join(discover())})")
    return load_object(found.spec.input.generator)(date, rows, landing_dir, **options)
