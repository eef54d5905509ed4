"""`make bench-memory`: the peak RSS of each step of a card_fraud day, and of the whole day, by size.

For each size in BENCH_MEMORY_ROWS (default `1000000,3000000,5000000`) it builds a fresh data root
under BENCH_MEMORY_HOME (default `bench_memory_home`), trains and registers a model on a day of the
same size (so the day's checks pass and the publish runs), lands a day of that many transactions, then materializes through the real `dagster` CLI:

- each step alone (`transactions`, `features`, `predictions` with its checks, `serving_predictions`),
  each in its own process;
- the whole day (the four assets and their checks) in one process.

The peak RSS of a process comes from `wait4` (the kernel's high-water mark of that process), so the
figure is what a pod's memory limit would see. One JSON object per line, then a table.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from batch_inference.settings import environment_copy, load_settings

PIPELINE = "card_fraud"
STEPS = ("transactions", "features", "predictions", "serving_predictions")
DAY = "2026-01-08"
TRAINING_DAY = "2026-01-07"


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _env(home: Path) -> dict[str, str]:
    env = environment_copy()
    env.update({"BATCH_INFERENCE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home")})
    for name in ("BATCH_INFERENCE_LAKE_URI", "BATCH_INFERENCE_LANDING_URI", "MLFLOW_TRACKING_URI",
                 "BATCH_INFERENCE_WAREHOUSE_SQL", "BATCH_INFERENCE_ENV"):
        env.pop(name, None)
    return env


def _measured(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run `cmd` to the end; its wall seconds and the peak RSS (bytes) of its process tree's largest process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr.decode()[-3000:]}")
    return time.perf_counter() - started, usage.ru_maxrss * 1024


def _materialize(assets: list[str], env: dict[str, str], partition: str | None = None) -> tuple[float, int]:
    cmd = [_bin("dagster"), "asset", "materialize", "-m", "batch_inference.definitions",
           "--select", ",".join(f"{PIPELINE}/{a}" for a in assets)]
    if partition:
        cmd += ["--partition", partition]
    return _measured(cmd, env)


def _generate(date: str, rows: int, env: dict[str, str]) -> None:
    subprocess.run([_bin("batch-inference"), "generate", "--pipeline", PIPELINE, "--date", date,
                    "--rows", str(rows)], env=env, check=True, stdout=subprocess.DEVNULL)


def prepare(home: Path, rows: int) -> dict[str, str]:
    """A fresh data root with a registered champion trained on one day of `rows` rows."""
    shutil.rmtree(home, ignore_errors=True)
    (home / "dagster_home").mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parents[3] / "dagster.yaml", home / "dagster_home" / "dagster.yaml")
    env = _env(home)
    _generate(TRAINING_DAY, rows, env)
    _materialize(["transactions", "features"], env, TRAINING_DAY)
    _materialize(["model"], env)
    return env


def measure(rows: int, root: Path) -> list[dict]:
    env = prepare(root / f"rows-{rows}", rows)
    _generate(DAY, rows, env)
    results = []
    for step in STEPS:
        seconds, peak = _materialize([step], env, DAY)
        results.append({"rows": rows, "step": step, "seconds": round(seconds, 2), "peak_rss_mb": round(peak / 2**20)})
    seconds, peak = _materialize(list(STEPS), env, DAY)
    results.append({"rows": rows, "step": "whole_day", "seconds": round(seconds, 2),
                    "peak_rss_mb": round(peak / 2**20)})
    return results


def main() -> int:
    knobs = load_settings().bench
    sizes = [int(s) for s in knobs.get("MEMORY_ROWS", "1000000,3000000,5000000").split(",") if s]
    root = Path(knobs.get("MEMORY_HOME", "bench_memory_home")).resolve()
    print(f"# bench-memory {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, sizes {sizes}, data root {root}",
          file=sys.stderr)
    table: dict[str, dict[int, int]] = {}
    for rows in sizes:
        for result in measure(rows, root):
            print(json.dumps(result), flush=True)
            table.setdefault(result["step"], {})[rows] = result["peak_rss_mb"]
    print(f"\n| step (peak RSS, MB) | {' | '.join(f'{r:,} rows' for r in sizes)} |")
    print(f"|---|{'---|' * len(sizes)}")
    for step, by_size in table.items():
        print(f"| {step} | {' | '.join(str(by_size[r]) for r in sizes)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
