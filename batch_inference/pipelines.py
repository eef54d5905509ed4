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


def _documents(root: Path):
    """(file, document index, document) of every `BatchScoring` document under `root`."""
    for path in sorted(root.rglob("defs.yaml")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue  # .venv, .git, caches
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue  # not ours to report: Dagster's loader names a YAML syntax error with its position
        for index, document in enumerate(documents):
            if isinstance(document, dict) and str(document.get("type", "")).endswith("BatchScoring"):
                yield path, index, document


def discover(root: Path = DEFS_ROOT) -> dict[str, Pipeline]:
    """Every `BatchScoring` instance under `root`, by pipeline name (documents split by `---`)."""
    from batch_inference.components.batch_scoring import BatchScoring

    found: dict[str, Pipeline] = {}
    for path, _, document in _documents(root):
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
    for path, index, document in _documents(root):
        name = (document.get("attributes") or {}).get("name")
        if isinstance(name, str):
            found.setdefault(name, []).append((path, yaml_locator(path, index)(("name",))[1]))
    return found


def check_pipelines(root: Path = DEFS_ROOT) -> list[str]:
    """The load-time checks of every pipeline under `root`, without Dagster: one message per
    pipeline with problems, each problem as `file:line: attributes.<field>: message`."""
    from batch_inference.components.batch_scoring import BatchScoring
    from batch_inference.components.load_validation import PipelineConfigError, Problem, yaml_locator

    errors: list[str] = []
    declared = declared_pipelines(root)
    for path, index, document in _documents(root):
        locate = yaml_locator(path, index)
        attributes = document.get("attributes") or {}
        try:
            spec = BatchScoring.model_validate(attributes)
        except ValidationError as exc:
            problems = [Problem(tuple(e["loc"]), e["msg"]) for e in exc.errors()]
            errors.append(str(PipelineConfigError(str(attributes.get("name", "?")), problems, locate)))
            continue
        problems = [Problem(("name",), f"pipeline name {spec.name!r} is also declared in {file}:{line}")
                    for file, line in declared.get(spec.name, []) if file != path]
        try:
            Pipeline(spec, path.parent).validate()
        except PipelineConfigError as exc:
            problems = exc.problems + problems
        if problems:
            errors.append(str(PipelineConfigError(spec.name, problems, locate)))
    return errors


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
