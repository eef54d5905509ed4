"""docs/add-a-pipeline.md, step by step, in a temporary copy of the project: `dg scaffold defs`,
`dg check defs`, landing files, features, a trained model, and a scored, checked, published day.

Real processes: the `dg` and `dagster` CLIs and `batch-inference generate`, each with the copy first
on PYTHONPATH and its own BATCH_INFERENCE_HOME / DAGSTER_HOME.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batch_inference.validation import parse_landing_name

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
NAME = "demand_score"
DAYS = ("2025-03-01", "2025-03-02")
CHECKS = ("predictions_schema", "predictions_completeness", "predictions_drift", "predictions_model_version")


def project_copy(root: Path) -> Path:
    """The project's package and pyproject, without the example pipelines (they are not needed here)."""
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(REPO / "batch_inference", root / "batch_inference",
                    ignore=shutil.ignore_patterns("__pycache__", "card_fraud", "support_tickets"))
    return root


def run(args: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.integration
def test_a_scaffolded_pipeline_checks_and_scores_a_day(tmp_path: Path):
    project = project_copy(tmp_path)
    home = tmp_path / "home"
    (home / "dagster_home").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(project), "BATCH_INFERENCE_HOME": str(home),
           "DAGSTER_HOME": str(home / "dagster_home")}

    out = run([str(BIN / "dg"), "scaffold", "defs", "batch_inference.components.BatchScoring", NAME], project, env)
    folder = project / "batch_inference" / "defs" / NAME
    assert f"Creating defs at {folder}" in out
    assert sorted(p.name for p in folder.iterdir()) == ["__init__.py", "defs.yaml", "features.sql", "generator.py",
                                                       "model.py", "schemas.py"]
    assert (folder / "defs.yaml").read_text().startswith("# The demand_score pipeline")

    listed = run([str(BIN / "dg"), "list", "components"], project, env)
    assert "batch_inference.components.BatchScoring" in listed
    checked = run([str(BIN / "dg"), "check", "defs"], project, env)
    assert "All definitions loaded successfully" in checked

    for day in DAYS:
        landing = Path(run([str(BIN / "batch-inference"), "generate", "--pipeline", NAME, "--date", day,
                            "--rows", "3000", "--corrupt-rate", "0.01"], project, env).strip())
        assert parse_landing_name(landing.name) == (NAME, day)
    materialize = [str(BIN / "dagster"), "asset", "materialize", "-m", "batch_inference.definitions"]
    for day in DAYS:
        run([*materialize, "--select", f"{NAME}/records,{NAME}/features", "--partition", day], project, env)
    model = run([*materialize, "--select", f"{NAME}/model"], project, env)
    assert "champion -> demand_score_model v1" in model

    scored = run([*materialize, "--select", f"{NAME}/predictions,{NAME}/serving_predictions", "--partition",
                  DAYS[1]], project, env)
    for check in CHECKS:
        assert f"Asset check '{check}' on '{NAME}/predictions' passed" in scored
    lake = home / "lake" / NAME
    landed = pq.read_table(home / "landing" / f"{NAME}_{DAYS[1]}.parquet").num_rows
    quarantined = pq.read_table(lake / "quarantine" / f"date={DAYS[1]}").num_rows
    served = pq.read_table(lake / "serving_predictions" / f"date={DAYS[1]}")
    assert quarantined > 0 and served.num_rows + quarantined == landed
    assert served.column_names == ["record_id", "score", "model_name", "model_version", "scored_at", "run_id"]
    assert set(served.column("model_version").to_pylist()) == {"1"}


def test_scaffolding_refuses_a_name_that_cannot_name_landing_files(tmp_path: Path):
    from batch_inference.components.scaffold import scaffold_pipeline

    with pytest.raises(ValueError, match=r"pipeline name 'Demand-Score': use lower-case letters"):
        scaffold_pipeline(tmp_path / "batch_inference" / "defs" / "Demand-Score", tmp_path)
    written = scaffold_pipeline(tmp_path / "batch_inference" / "defs" / "ok_name", tmp_path)
    assert "batch_inference.defs.ok_name.schemas:INPUT_SCHEMA" in (written[0].parent / "defs.yaml").read_text()
    with pytest.raises(FileExistsError):
        scaffold_pipeline(tmp_path / "batch_inference" / "defs" / "ok_name", tmp_path)


def test_the_docs_plugin_examples_implement_their_protocols():
    """The adapter and head of docs/add-a-pipeline.md, run as written."""
    import re

    import numpy as np
    import pyarrow as pa
    import torch

    from batch_inference.plugins.protocols import InputAdapter, OutputHead

    text = (REPO / "docs" / "add-a-pipeline.md").read_text()
    namespace: dict = {}
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        if "class ClippedMatrix" in block or "class FlaggedProbability" in block:
            exec(compile(block, "docs/add-a-pipeline.md", "exec"), namespace)  # noqa: S102
    adapter = namespace["ClippedMatrix"](columns=["a", "b"], low=-1, high=1)
    assert isinstance(adapter, InputAdapter)
    batch = pa.RecordBatch.from_pydict({"record_id": ["r1", "r2", "r3"], "a": [0.5, None, 9.0], "b": [-3.0, 1.0, 0.0]})
    prepared = adapter.prepare(batch, forward_rows=1)
    assert prepared.record_ids.to_pylist() == ["r1", "r3"] and prepared.rejected_ids == ["r2"]
    assert [c.tolist() for c in prepared.chunks] == [[[0.5, -1.0]], [[1.0, 0.0]]]
    head = namespace["FlaggedProbability"](threshold=0.5)
    assert isinstance(head, OutputHead)
    values = head.transform(torch.tensor([[0.0], [4.0], [-4.0]])).numpy()
    score, flagged = head.to_columns(values)
    assert flagged.to_pylist() == [True, True, False] and score.type == pa.float32()
    assert [f.name for f in head.fields()] == ["score", "flagged"] and np.isclose(score[0].as_py(), 0.5)
