"""The `dagster` and `batch-inference` CLIs in subprocesses, as a user runs them."""

import subprocess
import sys
from pathlib import Path

import pytest

from batch_inference_tests.conftest import job, pipeline_lake, subprocess_env
from batch_inference_tests.invariants import assert_day_scored_once

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.integration


def _run(args: list[str], env: dict[str, str], timeout: int = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def test_generate_command_writes_a_dated_landing_file(home):
    env = subprocess_env(home)
    out = _run([str(BIN / "batch-inference"), "generate", "--date", "2026-01-07", "--rows", "500"], env)
    path = Path(out.stdout.strip())
    assert path == Path(home.landing_uri) / "transactions_2026-01-07.parquet" and path.stat().st_size > 0
    bad = subprocess.run([str(BIN / "batch-inference"), "generate", "--date", "2026-02-30"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid partition key '2026-02-30'" in bad.stderr
    explicit = _run([str(BIN / "batch-inference"), "generate", "--pipeline", "card_fraud", "--date", "2026-01-08",
                     "--rows", "50"], env)
    assert Path(explicit.stdout.strip()) == Path(home.landing_uri) / "transactions_2026-01-08.parquet"
    unknown = subprocess.run([str(BIN / "batch-inference"), "generate", "--pipeline", "nope", "--date",
                              "2026-01-08"], env=env, capture_output=True, text=True)
    assert unknown.returncode == 2 and "pipeline 'nope'" in unknown.stderr


def test_dagster_cli_materializes_and_rescores_a_day(home, landed, registry):
    env = subprocess_env(home)
    day = landed[0]
    base = [str(BIN / "dagster"), "asset", "materialize", "-m", "batch_inference.definitions", "--partition", day]
    _run([*base, "--select", "card_fraud/transactions,card_fraud/features,card_fraud/predictions"], env)
    champion = registry.require_champion().version
    assert_day_scored_once(home, day, champion)
    lake = pipeline_lake(home)
    first = lake.read("predictions", day)

    _run([*base, "--select", "card_fraud/predictions"], env)
    second = lake.read("predictions", day)
    assert second.select(["record_id", "score"]).equals(first.select(["record_id", "score"]))
    assert second.column("run_id")[0] != first.column("run_id")[0]  # really re-scored
    assert_day_scored_once(home, day, champion)


@pytest.mark.parametrize("args", [[], ["-w", "workspace.yaml"], ["-m", "batch_inference.definitions"]])
def test_code_location_loads_from_pyproject_workspace_and_module(home, args):
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([str(BIN / "dagster"), "definitions", "validate", *args], cwd=repo,
                          env=subprocess_env(home), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "All code locations passed validation" in proc.stdout + proc.stderr


def test_prod_environment_loads_with_the_k8s_executor(home):
    env = {**subprocess_env(home), "BATCH_INFERENCE_ENV": "prod"}
    code = ("from batch_inference.definitions import build_definitions; "
            f"print(build_definitions().resolve_job_def({job('score_day')!r}).executor_def.name)")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "k8s_job_executor"
