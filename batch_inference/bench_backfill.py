"""`make bench-backfill`: the cost of a year backfill, ranged runs against one run per partition.

For each strategy it starts a real `dagster dev` (webserver + daemon) over a fresh instance and lake
(same landing files, same registered champion), launches a backfill of one pipeline's daily assets
exactly as the UI does (GraphQL `launchPartitionBackfill`), waits for it, and prints one JSON line:
wall time, runs, per-partition overhead (wall time minus the scoring steps' own time, per
partition), the daemon's CPU seconds, and the event log's size on disk.

BENCH_BACKFILL_PIPELINE (default: the first pipeline of the defs folder with a data generator),
BENCH_BACKFILL_DAYS (default 365), BENCH_BACKFILL_ROWS (default 20000 per day),
BENCH_BACKFILL_HOME (default ./bench_backfill_home), BENCH_BACKFILL_N (partitions per ranged run,
default 30), BENCH_BACKFILL_STRATEGIES (default "ranged,per_partition"), BENCH_BACKFILL_BAD_DAYS
(default 0): with N > 0, one more ranged backfill in which N landing files spread through the range
are truncated; it reports how many days were published in that first pass (goal: all but N).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path

from batch_inference.devserver import LAUNCH_BACKFILL, dagster_dev, graphql
from batch_inference.settings import environment_copy, load_bench_backfill_settings


def _days(count: int) -> list[str]:
    end = dt.date(2026, 10, 31)
    return [(end - dt.timedelta(days=i)).isoformat() for i in range(count - 1, -1, -1)]


def daily_assets(info) -> list[str]:
    """The pipeline's daily assets, in graph order: input, features, predictions, serving."""
    spec = info.spec
    return [spec.input.asset, spec.features.asset, spec.scoring.asset, spec.serving.asset]


def _env(home: Path, work: Path) -> dict[str, str]:
    """A data root of its own (`work`) over the shared landing files and MLflow registry."""
    return environment_copy(BATCH_INFERENCE_HOME=str(work), BATCH_INFERENCE_LANDING_URI=str(home / "landing"),
                            MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
                            BATCH_INFERENCE_MLFLOW_ARTIFACTS=str(home / "mlflow" / "artifacts"))


def prepare(home: Path, info, days: list[str], rows: int) -> None:
    """Landing files for every day, and a champion built once by the pipeline's own model asset."""
    from batch_inference.pipelines import write_landing_file

    landing = home / "landing"
    for day in days:
        if not (landing / f"{info.spec.input.landing_entity}_{day}.parquet").exists():
            write_landing_file(day, rows, landing, pipeline=info.name)
    marker = home / f".champion-{info.name}"
    if marker.exists():
        return
    import dagster as dg

    from batch_inference.definitions import build_definitions
    from batch_inference.settings import load_settings

    settings = load_settings(_env(home, home / "training"))
    defs = build_definitions(settings, "local")
    with dg.DagsterInstance.ephemeral() as instance:
        for day in days[:7]:
            defs.resolve_job_def(f"{info.name}_ingest_day").execute_in_process(partition_key=day, instance=instance)
            if info.spec.labels is not None:  # the model builder's evaluation set needs the labels
                defs.resolve_job_def(f"{info.name}_labels_day").execute_in_process(partition_key=day,
                                                                                   instance=instance)
        defs.resolve_job_def(f"{info.name}_train_model").execute_in_process(instance=instance)
    marker.touch()


def spread_days(days: list[str], count: int) -> list[str]:
    """`count` days spread evenly through `days` (never the first or the last)."""
    return [days[(i + 1) * len(days) // (count + 1)] for i in range(count)] if count else []


def landing_with_bad_files(home: Path, work: Path, info, days: list[str], bad: list[str]) -> Path:
    """A landing folder of its own: hard links to the shared files (ingest refuses symbolic links), and
    truncated copies for the `bad` days."""
    landing = work / "landing"
    landing.mkdir(parents=True)
    for day in days:
        name = f"{info.spec.input.landing_entity}_{day}.parquet"
        source = home / "landing" / name
        if day in bad:
            data = source.read_bytes()
            (landing / name).write_bytes(data[: len(data) // 2])  # a truncated upload
        else:
            os.link(source, landing / name)
    return landing


def _tree_cpu_seconds(pid: int, name: str) -> float:
    """CPU seconds (user + system) of the processes under `pid` whose command line contains `name`."""
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if name in cmdline and int(stat[2]) in _descendants(pid):  # stat[2]: parent pid
                total += (int(stat[11]) + int(stat[12])) / ticks
    return total


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(proc.name))
    found, todo = {pid}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _event_log_bytes(dagster_home: Path) -> int:
    return sum(f.stat().st_size for f in (dagster_home / "history").rglob("*") if f.is_file())


def run_strategy(name: str, per_run: int, home: Path, info, days: list[str], bad: list[str] = ()) -> dict:
    """One backfill of `days` through a fresh `dagster dev` (with the `bad` days' files truncated);
    returns the measurements."""
    import dagster as dg

    from batch_inference.dagster_compat import BACKFILL_REQUESTED, backfill_status

    work = home / name
    shutil.rmtree(work, ignore_errors=True)
    dagster_home = work / "dagster_home"
    env = {**_env(home, work), "BATCH_INFERENCE_SENSORS": "stopped",
           "BATCH_INFERENCE_PARTITIONS_PER_RUN": str(per_run)}
    predictions = dg.AssetKey([info.name, daily_assets(info)[2]])
    work.mkdir(parents=True)
    if bad:
        env["BATCH_INFERENCE_LANDING_URI"] = str(landing_with_bad_files(home, work, info, days, bad))
    serving = dg.AssetKey([info.name, daily_assets(info)[3]])
    with dagster_dev(env, dagster_home, work / "dagster_dev.log") as server:
        daemon_cpu_before = _tree_cpu_seconds(server.pid, "dagster._daemon")
        started = time.monotonic()
        params = {"partitionNames": days, "assetSelection": [{"path": [info.name, a]} for a in daily_assets(info)]}
        answer = graphql(server.port, LAUNCH_BACKFILL, {"params": params})["data"]["launchPartitionBackfill"]
        if answer["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill not launched: {answer}")
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            backfill_id = answer["backfillId"]
            while backfill_status(instance, backfill_id) == BACKFILL_REQUESTED:
                time.sleep(2)
            wall = time.monotonic() - started
            status = backfill_status(instance, backfill_id)
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            engine, scored = 0.0, 0
            for day in days:
                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=predictions, asset_partitions=[day]), limit=1).records
                meta = records[0].asset_materialization.metadata if records else {}
                if "duration_seconds" in meta:
                    engine, scored = engine + float(meta["duration_seconds"].value), scored + 1
            published = len(set(days) & instance.get_materialized_partitions(serving))
        daemon_cpu = _tree_cpu_seconds(server.pid, "dagster._daemon") - daemon_cpu_before
    return {"pipeline": info.name, "strategy": name, "partitions": len(days), "partitions_per_run": per_run,
            "status": status, "runs": len(runs), "wall_seconds": round(wall, 1),
            "scored_days": scored, "scoring_seconds": round(engine, 3), "overhead_per_partition_s": round((wall - engine) / len(days), 3),
            "daemon_cpu_seconds": round(daemon_cpu, 1), "bad_days": len(bad), "published_first_pass": published,
            "event_log_mb": round(_event_log_bytes(dagster_home) / 1e6, 3)}


def main() -> int:
    from batch_inference.pipelines import discover

    bench = load_bench_backfill_settings()
    pipelines = discover()
    name = bench.pipeline or next(n for n, i in sorted(pipelines.items()) if i.spec.input.generator)
    info = pipelines[name]
    home, rows, ranged_n, strategies = bench.home, bench.rows, bench.partitions_per_run, bench.strategies
    days = _days(bench.days)
    bad = spread_days(days, bench.bad_days)
    home.mkdir(parents=True, exist_ok=True)
    prepare(home, info, days, rows)
    results = {}
    for strategy in strategies:
        results[strategy] = run_strategy(strategy, ranged_n if strategy == "ranged" else 1, home, info, days)
        print(json.dumps(results[strategy]), flush=True)
    if bad:  # the same ranged backfill with bad files: how many days does the first pass publish?
        results["ranged_bad_days"] = run_strategy("ranged_bad_days", ranged_n, home, info, days, bad)
        print(json.dumps(results["ranged_bad_days"]), flush=True)
    if {"ranged", "per_partition"} <= set(results):
        r, p = results["ranged"], results["per_partition"]
        print(json.dumps({"summary": "ranged vs one run per partition", "speedup": round(p["wall_seconds"] /
                          r["wall_seconds"], 2), "runs": f"{r['runs']} vs {p['runs']}",
                          "overhead_per_partition_s": f"{r['overhead_per_partition_s']} vs "
                                                      f"{p['overhead_per_partition_s']}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
