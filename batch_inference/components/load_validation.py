"""A pipeline checked when definitions load (`dg check defs`, the code server), before any run.

Each mistake becomes a `Problem` with the YAML field it comes from; `PipelineConfigError` prints
them all, each as `file:line: attributes.<field>: message`. The checks:

- plug-in paths resolve (light ones are imported, heavy ones only located) and the SQL file exists;
- the feature SQL's output columns, found by running it over an empty table of the input schema
  (what DuckDB's `DESCRIBE` reports), hold the row key, the adapter's columns (`adapter_params`
  `column` / `columns`), the model's feature list (`registered_model.params.features`), and fit
  the features' pandera schema, and per-feature drift settings (`quality.features`) name a feature
  or an output column; the scoring output (row key, head columns, provenance) fits the
  predictions' pandera schema.

Names are checked by the YAML model itself (`batch_scoring.Identifier`); duplicate pipeline names
by `pipelines.declared_pipelines`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import yaml

from batch_inference.inference.schema import output_schema

if TYPE_CHECKING:
    from batch_inference.components.pipeline import Pipeline

FieldPath = tuple[str | int, ...]
# A field's place in the YAML: (file, 1-based line), from its key path under `attributes`.
Locator = Callable[[FieldPath], tuple[str, int]]


@dataclass(frozen=True)
class Problem:
    field: FieldPath  # key path under `attributes`, e.g. ("scoring", "adapter_params", "columns")
    message: str


class PipelineConfigError(ValueError):
    """A pipeline YAML that cannot work, with every problem named by file, line and field."""

    def __init__(self, pipeline: str, problems: Sequence[Problem], locate: Locator | None = None) -> None:
        self.pipeline, self.problems = pipeline, list(problems)
        lines = [f"  {_where(p.field, locate)}: {p.message}" for p in self.problems]
        super().__init__(f"pipeline {pipeline!r}: {len(lines)} problem(s) in its YAML, found at load "
                         "(before any run):\n" + "\n".join(lines))


def _where(field: FieldPath, locate: Locator | None) -> str:
    dotted = "attributes." + ".".join(str(part) for part in field)
    if locate is None:
        return dotted
    file, line = locate(field)
    return f"{file}:{line}: {dotted}"


def tree_locator(tree: Any) -> Locator:
    """Positions from Dagster's source position tree of one YAML document (`lookup_closest_and_path`)."""
    def locate(field: FieldPath) -> tuple[str, int]:
        position, _ = tree.lookup_closest_and_path(["attributes", *field], None)
        return position.filename, position.start.line
    return locate


def yaml_locator(path: Path, document: int = 0) -> Locator:
    """Positions re-found in the YAML text by key path (the closest existing ancestor's line)."""
    nodes = list(yaml.compose_all(path.read_text()))
    root = nodes[document] if document < len(nodes) else None

    def locate(field: FieldPath) -> tuple[str, int]:
        node, line = root, (root.start_mark.line + 1 if root is not None else 1)
        for part in ("attributes", *field):
            child = _child(node, part)
            if child is None:
                break
            node, line = child
        return str(path), line
    return locate


def _child(node: Any, part: str | int) -> tuple[Any, int] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == part:
                return value, key.start_mark.line + 1
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part], node.value[part].start_mark.line + 1
    return None


def find_problems(p: Pipeline) -> list[Problem]:
    """Every problem of a pipeline that can be found without running it."""
    problems: list[Problem] = []
    spec = p.spec

    def attempt(field: FieldPath, load: Callable[[], Any]) -> Any:
        try:
            return load()
        except Exception as exc:  # a plug-in's own import error is the user's to see, with its field
            problems.append(Problem(field, f"{type(exc).__name__}: {exc}"))
            return None

    sql_found = bool(spec.features.sql) and (p.root / spec.features.sql).is_file()
    if spec.features.sql:
        if not sql_found:
            problems.append(Problem(("features", "sql"), f"SQL file not found: {p.root / spec.features.sql}"))
    elif not spec.features.callable:
        problems.append(Problem(("features",), "needs `sql` (a file in this folder) or `callable`"))
    # The input's Arrow schema (for an upstream-fed input: the upstream's, when the YAML names it).
    schema = attempt(("input", "arrow_schema"), lambda: p.arrow_schema) if spec.input.arrow_schema else None
    attempt(("input", "rules"), lambda: p.rules)
    features_schema = attempt(("features", "pandera_schema"), lambda: p.features_schema)
    predictions_schema = attempt(("scoring", "pandera_schema"), lambda: p.predictions_schema)
    head = attempt(("scoring", "head"), lambda: p.head)
    if spec.features.callable:
        attempt(("features", "callable"), lambda: p.feature_fn)
    from batch_inference.plugins.loading import locate

    for field, path in ((("registered_model", "format"), spec.registered_model.format),
                        (("scoring", "adapter"), spec.scoring.adapter),
                        (("registered_model", "builder"), spec.registered_model.builder),
                        (("input", "generator"), spec.input.generator),
                        (("quality", "drift_check"), spec.quality.drift_check)):
        if path:
            attempt(field, lambda path=path: locate(path))
    if sql_found and schema is not None:
        outputs = [f.name for f in head.fields()] if head is not None else []
        problems += _feature_columns(p, schema, features_schema, outputs)
    if head is not None and predictions_schema is not None:
        problems += _pandera_fits(predictions_schema, output_schema(head, p.row_key).empty_table(),
                                  ("scoring", "pandera_schema"), "the scoring output")
    return problems


def feature_sql_schema(sql: str, input_schema: pa.Schema) -> pa.Schema:
    """The feature SQL's output columns and types, from a run over an empty table of the input."""
    from batch_inference.features import run_feature_sql

    return run_feature_sql(sql, input_schema.empty_table()).schema


def _feature_columns(p: Pipeline, input_schema: pa.Schema, features_schema, outputs: list[str]) -> list[Problem]:
    spec, sql_file = p.spec, p.spec.features.sql
    try:
        out = feature_sql_schema((p.root / sql_file).read_text(), input_schema)
    except Exception as exc:  # DuckDB's parser/binder error, e.g. a column the input does not have
        return [Problem(("features", "sql"), f"{sql_file} does not run over the input schema: "
                        f"{str(exc).splitlines()[0]}")]
    have = set(out.names)
    shown = ", ".join(out.names)
    problems = []
    key_field = ("features", "key") if spec.features.key else ("input", "key")
    if p.row_key not in have:
        problems.append(Problem(key_field, f"row key {p.row_key!r} is not a column of {sql_file} (it selects: "
                                f"{shown})"))
    wanted: list[tuple[FieldPath, list]] = []
    params = spec.scoring.adapter_params
    if isinstance(params.get("column"), str):
        wanted.append((("scoring", "adapter_params", "column"), [params["column"]]))
    if isinstance(params.get("columns"), list):
        wanted.append((("scoring", "adapter_params", "columns"), params["columns"]))
    if isinstance(spec.registered_model.params.get("features"), list):
        wanted.append((("registered_model", "params", "features"), spec.registered_model.params["features"]))
    for field, names in wanted:
        missing = [str(n) for n in names if n not in have]
        if missing:
            problems.append(Problem(field, f"column(s) {', '.join(map(repr, missing))} not selected by "
                                    f"{sql_file} (it selects: {shown})"))
    for name in getattr(spec.quality, "features", {}) or {}:
        if name not in have and name not in outputs:
            problems.append(Problem(("quality", "features", name), f"drift settings for {name!r}, which is neither "
                                    f"a column of {sql_file} ({shown}) nor an output ({', '.join(outputs)})"))
    if features_schema is not None:
        problems += _pandera_fits(features_schema, out.empty_table(), ("features", "pandera_schema"),
                                  f"the output of {sql_file}")
    return problems


def _pandera_fits(schema, table: pa.Table, field: FieldPath, what: str) -> list[Problem]:
    """Column presence and dtypes of an empty table checked against a pandera model."""
    from batch_inference.quality.schema_validation import validate

    report = validate(schema, table)
    if report.passed:
        return []
    cases = "; ".join(f"{row.column}: {row.check}, got {row.failure_case}" for row in report.failure_sample.itertuples())
    return [Problem(field, f"{what} does not fit {getattr(schema.Config, 'name', schema.__name__)}: {cases}")]
