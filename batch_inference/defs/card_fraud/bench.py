"""`make bench`: throughput of the engine, a hand-written baseline loop, and a full materialization.

Generates BENCH_ROWS rows (default 4,000,000) x 64 float32 features `f00..f63` plus `record_id` as
one `features` partition under BENCH_HOME, registers an MLP 64->256->256->1 as `champion`, and
prints one JSON object per line: `name`, `rows`, `seconds`, `rows_per_s`, `peak_rss_mb` (medians of
BENCH_REPEATS runs, each in a fresh process), plus `forward_only` (the model alone, tensor in memory)
and `engine_shadow` (the engine with a challenger of the same size scored in shadow from the same
read batches; `forward_seconds` / `shadow_forward_seconds` split the two models' forward time).
"""

from __future__ import annotations

import contextlib
import json
import queue
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batch_inference.settings import environment_copy, load_settings

BENCH_DATE = "2026-01-01"
FEATURES = tuple(f"f{i:02d}" for i in range(64))


def _home() -> Path:
    return Path(load_settings().bench.get("HOME", "bench_home")).resolve()


def _env(home: Path) -> dict[str, str]:
    env = environment_copy()
    env.update({"BATCH_INFERENCE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home")})
    for name in ("BATCH_INFERENCE_LAKE_URI", "BATCH_INFERENCE_LANDING_URI", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    return env


def prepare(home: Path, rows: int) -> None:
    """Write the features partition (and an ids-only landing file) and register the champion."""
    from batch_inference.lake import ROW_GROUP_ROWS

    settings = load_settings(_env(home))
    lake = _lake(settings)
    marker = home / f".prepared-{rows}-rg{ROW_GROUP_ROWS}"
    if not marker.exists():
        schema = pa.schema([("record_id", pa.string())] + [(f, pa.float32()) for f in FEATURES])
        rng = np.random.default_rng(0)
        ids_all = []
        with lake.writer("features", BENCH_DATE, schema) as writer:
            for start in range(0, rows, ROW_GROUP_ROWS):
                n = min(ROW_GROUP_ROWS, rows - start)
                ids = pa.array([f"b-{i:09d}" for i in range(start, start + n)], pa.string())
                ids_all.append(ids)
                cols = [ids] + [pa.array(rng.standard_normal(n, dtype=np.float32)) for _ in FEATURES]
                writer.write_batch(pa.record_batch(cols, schema=schema))
        landing = Path(settings.landing_uri)
        landing.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"record_id": pa.concat_arrays(ids_all)}),
                       landing / f"transactions_{BENCH_DATE}.parquet")
        marker.touch()
    registry = _registry(settings)
    if registry.champion() is None:
        import tempfile

        import torch

        from batch_inference.defs.card_fraud.network import MODEL_FORMAT, RiskMLP, model_config, save_model
        from batch_inference.modeling.artifact import REFERENCE_FILE
        from batch_inference.plugins.protocols import TrainedArtifact
        from batch_inference.quality.reference import build_reference

        torch.manual_seed(0)
        model = RiskMLP(len(FEATURES), (256, 256)).eval()
        sample = lake.read("features", BENCH_DATE).slice(0, 100_000)
        x = np.stack([sample.column(f).to_numpy() for f in FEATURES], axis=1)
        with torch.inference_mode():
            scores = torch.sigmoid(model(torch.from_numpy(x))).numpy()
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp) / "model"
            save_model(model, model_config(FEATURES, (256, 256)), directory)
            reference = build_reference({f: x[:, i] for i, f in enumerate(FEATURES)}, scores, "score")
            (directory / REFERENCE_FILE).write_text(json.dumps(reference))
            ref = registry.register(TrainedArtifact(directory, MODEL_FORMAT, {"bench": 1.0}))
        # A synthetic bench model: promoted around the gate with the audited override (no evaluation set).
        from batch_inference.modeling.promotion import PromotionGate

        PromotionGate(registry, 0).override(ref.version, "bench", "synthetic benchmark model")
        registry.set_champion(ref.version)


PIPELINE = "card_fraud"
MODEL_NAME = "transaction_risk"


def _lake(settings):
    from batch_inference.lake import Lake

    return Lake(f"{settings.lake_uri}/{PIPELINE}")


def _registry(settings):
    from batch_inference.defs.card_fraud.network import MODEL_FORMAT, RiskMLPFormat
    from batch_inference.modeling.registry import ModelRegistry

    return ModelRegistry(settings.mlflow_tracking_uri, MODEL_NAME, settings.mlflow_artifact_root,
                         formats={MODEL_FORMAT: RiskMLPFormat()})


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_engine(home: Path, shadow: bool = False) -> dict:
    """The project's engine on the bench partition (model loaded from the registry); with `shadow`, a
    challenger of the same size scored beside it from the same read batches (its own output file)."""
    from batch_inference.inference.engine import EngineConfig, InferenceEngine, Provenance, iter_batches
    from batch_inference.lake import Lake
    from batch_inference.plugins.heads import Probability
    from batch_inference.plugins.tabular import FloatMatrix

    settings = load_settings(_env(home))
    registry = _registry(settings)
    loaded = registry.load(registry.require_champion())
    lake, scratch = _lake(settings), Lake(str(home / "scratch"))
    config = EngineConfig()
    engine = InferenceEngine(loaded.model, FloatMatrix.from_model(loaded.artifact), Probability(), config)
    if shadow:
        import copy

        import torch

        challenger = copy.deepcopy(loaded.model)
        with torch.no_grad():
            for parameter in challenger.parameters():
                parameter.mul_(1.01)  # another version of the same size: the same forward cost
        engine.with_shadow(InferenceEngine(challenger, FloatMatrix.from_model(loaded.artifact), Probability(), config))
    started = time.perf_counter()
    source = lake.parquet_file("features", BENCH_DATE)
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(scratch.writer("predictions", BENCH_DATE, engine.output_schema))
        shadow_writer = stack.enter_context(scratch.writer("challenger_predictions", BENCH_DATE,
                                                           engine.output_schema)) if shadow else None
        result = engine.run(iter_batches(source, config.read_batch_rows, ["record_id", *engine.columns]),
                            writer.write_batch, Provenance(loaded.ref.name, loaded.ref.version, "bench"),
                            shadow_write=shadow_writer.write_batch if shadow_writer else None,
                            shadow_provenance=Provenance(loaded.ref.name, "0", "bench") if shadow else None)
    return {"rows": result.rows_scored, "seconds": time.perf_counter() - started,
            "forward_seconds": result.forward_seconds, "shadow_forward_seconds": result.shadow_forward_seconds}


def run_plain_loop(home: Path) -> dict:
    """Baseline: record batches, a read-ahead and a write-behind thread, 8k-row forward calls."""
    import torch

    from batch_inference.defs.card_fraud.network import RiskMLP

    torch.manual_seed(0)
    model = RiskMLP(len(FEATURES), (256, 256)).eval()
    source = home / "lake" / PIPELINE / "features" / f"date={BENCH_DATE}" / "part-0.parquet"
    target = home / "scratch" / "plain_loop.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    inbox: queue.Queue = queue.Queue(3)
    outbox: queue.Queue = queue.Queue(3)

    def read() -> None:
        for batch in pq.ParquetFile(source).iter_batches(batch_size=65_536):
            x = np.vstack([batch.column(f).to_numpy() for f in FEATURES]).T
            inbox.put((batch.column("record_id"), x))
        inbox.put(None)

    def write() -> None:
        schema = pa.schema([("record_id", pa.string()), ("score", pa.float32())])
        with pq.ParquetWriter(target, schema, compression="zstd") as writer:
            while (item := outbox.get()) is not None:
                writer.write_batch(pa.record_batch(list(item), schema=schema))

    threads = [threading.Thread(target=read), threading.Thread(target=write)]
    for t in threads:
        t.start()
    rows = 0
    with torch.inference_mode():
        while (item := inbox.get()) is not None:
            ids, x = item
            xt = torch.from_numpy(np.ascontiguousarray(x))
            scores = torch.cat([torch.sigmoid(model(xt[i:i + 8192])) for i in range(0, len(xt), 8192)])
            outbox.put((ids, pa.array(scores.numpy())))
            rows += len(x)
    outbox.put(None)
    for t in threads:
        t.join()
    return {"rows": rows, "seconds": time.perf_counter() - started}


def run_forward_only() -> dict:
    """The model alone on a tensor already in memory, 8k-row calls: the hardware's ceiling."""
    import torch

    from batch_inference.defs.card_fraud.network import RiskMLP

    torch.manual_seed(0)
    model = RiskMLP(len(FEATURES), (256, 256)).eval()
    x = torch.randn(262_144, len(FEATURES))
    passes = 8
    with torch.inference_mode():
        model(x[:8192])
        started = time.perf_counter()
        for _ in range(passes):
            for i in range(0, len(x), 8192):
                torch.sigmoid(model(x[i:i + 8192]))
    return {"rows": len(x) * passes, "seconds": time.perf_counter() - started}


def run_materialize(home: Path) -> dict:
    """`dagster asset materialize --select predictions` for the bench partition, end to end."""
    started = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "batch_inference.definitions",
         "--select", f"{PIPELINE}/predictions", "--partition", BENCH_DATE],
        env=_env(home), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    # The bench's synthetic features (f00..f63) are not card_fraud's, so the drift check refuses the
    # day (the YAML's critical features are absent) after the scoring step succeeded: that is measured.
    refused_by_check = "DagsterAssetCheckFailedError" in proc.stderr and "STEP_SUCCESS" in proc.stderr
    if proc.returncode != 0 and not refused_by_check:
        raise RuntimeError(f"materialize failed:\n{proc.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rows = pq.ParquetFile(home / "lake" / PIPELINE / "predictions" / f"date={BENCH_DATE}" / "part-0.parquet").metadata.num_rows
    return {"rows": rows, "seconds": seconds, "peak_rss_mb": peak}


def _one(name: str) -> None:
    """Run one measurement in this (fresh) process and print its JSON."""
    home = _home()
    result = {"engine": lambda: run_engine(home), "engine_shadow": lambda: run_engine(home, shadow=True),
              "plain_loop": lambda: run_plain_loop(home),
              "forward_only": run_forward_only, "materialize": lambda: run_materialize(home)}[name]()
    result.setdefault("peak_rss_mb", _peak_rss_mb())
    print(json.dumps(result))


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        _one(sys.argv[2])
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "--prepare":
        prepare(_home(), int(sys.argv[2]))
        return 0
    knobs = load_settings().bench
    home, rows = _home(), int(knobs.get("ROWS", "4000000"))
    repeats = int(knobs.get("REPEATS", "3"))
    names = knobs.get("ONLY", "forward_only,plain_loop,engine,engine_shadow,materialize").split(",")
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    # In its own process: Linux children inherit the parent's peak RSS, so preparing gigabytes of
    # data here would inflate every measurement's `peak_rss_mb`.
    subprocess.run([sys.executable, "-m", "batch_inference.defs.card_fraud.bench", "--prepare", str(rows)],
                   check=True, env=_env(home))
    for name in names:
        runs = []
        for _ in range(repeats):
            out = subprocess.run([sys.executable, "-m", "batch_inference.defs.card_fraud.bench", "--one", name],
                                 capture_output=True, text=True, env=_env(home))
            if out.returncode != 0:
                raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        seconds = statistics.median(r["seconds"] for r in runs)
        print(json.dumps({
            "name": name, "rows": runs[0]["rows"], "seconds": round(seconds, 3),
            "rows_per_s": round(runs[0]["rows"] / seconds), "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
            "repeats": repeats,
            **{k: round(statistics.median(r[k] for r in runs), 3)
               for k in ("forward_seconds", "shadow_forward_seconds") if k in runs[0]},
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
