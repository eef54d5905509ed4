"""`dg scaffold defs batch_inference.components.BatchScoring <name>`: a working pipeline folder.

Writes a commented `defs.yaml`, a `features.sql`, the input/features/predictions schemas, a data
generator, and a model (format + builder) into `defs/<name>/`. The result passes `dg check defs`
as it is and scores a day; docs/add-a-pipeline.md walks through replacing each stub.
"""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Template file -> file written. `.tmpl` keeps the Python stubs out of imports, lint and tests here.
FILES = {"defs.yaml": "defs.yaml", "features.sql": "features.sql", "schemas.py.tmpl": "schemas.py",
         "generator.py.tmpl": "generator.py", "model.py.tmpl": "model.py"}
# The name becomes a landing file prefix too (`<name>_YYYY-MM-DD.parquet`): lower case only.
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def module_of(folder: Path, project_root: Path | None) -> str:
    """The import path of a folder under the project (a `src/` layout's `src` left out)."""
    root = (project_root or Path.cwd()).resolve()
    parts = list(folder.resolve().relative_to(root).parts)
    if parts and parts[0] == "src":
        parts = parts[1:]
    return ".".join(parts)


def render(text: str, name: str, module: str) -> str:
    class_prefix = "".join(part.capitalize() for part in name.split("_"))
    return text.replace("{{name}}", name).replace("{{module}}", module).replace("{{class_prefix}}", class_prefix)


def scaffold_pipeline(folder: Path, project_root: Path | None) -> list[Path]:
    """Write the pipeline folder `folder` (its name is the pipeline's name); refuses to overwrite."""
    name = folder.name
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"pipeline name {name!r}: use lower-case letters, digits and underscores, starting "
                         "with a letter (it names assets, lake folders and landing files)")
    module = module_of(folder, project_root)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for template, target in {**FILES, "__init__.py": "__init__.py"}.items():
        path = folder / target
        if path.exists() and target != "__init__.py":
            raise FileExistsError(f"{path} exists: scaffold into a new folder")
        text = "" if template == "__init__.py" else render((TEMPLATES / template).read_text(), name, module)
        if not path.exists():
            path.write_text(text)
            written.append(path)
    return written


class BatchScoringScaffolder(dg.Scaffolder):
    """Scaffolds a complete, working pipeline folder for the `BatchScoring` component."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        if request.scaffold_format != "yaml":
            raise ValueError("BatchScoring pipelines are declared in YAML: use --format yaml")
        if request.append:
            raise ValueError("BatchScoring scaffolds a whole folder; --append is not supported")
        scaffold_pipeline(request.target_path, request.project_root)
