"""The batch inference engine: stream Parquet record batches through a torch model and out.

No Dagster here. Reading, compute and writing overlap: a reader thread decodes record batches
and stacks feature columns into float32 matrices, the calling thread runs the forward pass
(torch and pyarrow both release the GIL), and a writer thread encodes and writes results.
Memory is bounded by the queue depth, not by the partition size.
"""

from __future__ import annotations

import copy
import ctypes
import datetime as dt
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch

OUTPUT_SCHEMA = pa.schema([
    ("record_id", pa.string()),
    ("score", pa.float32()),
    ("model_name", pa.string()),
    ("model_version", pa.string()),
    ("scored_at", pa.timestamp("us", tz="UTC")),
    ("run_id", pa.string()),
])

_SENTINEL = object()


@dataclass
class EngineConfig:
    """Tuning knobs; the defaults suit CPUs and are adapted on CUDA."""

    read_batch_rows: int = 16_384
    forward_rows: int = 8_192
    device: str = "auto"
    num_threads: int | None = None
    queue_depth: int = 3
    autocast_bf16: bool = True


@dataclass
class Provenance:
    model_name: str
    model_version: str
    run_id: str
    scored_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass
class RejectedRows:
    """Rows the engine could not score (non-finite features), with the reason."""

    record_ids: list[str]
    reasons: list[str]


@dataclass
class EngineResult:
    rows_in: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    batch_latencies_ms: list[float] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def keep_allocations_mapped(threshold_bytes: int = 64 << 20) -> None:
    """Stop glibc from returning large activation buffers to the OS after every forward call.

    Otherwise each large forward pass page-faults its buffers back in (about half speed).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, threshold_bytes)
    libc.mallopt(m_trim_threshold, threshold_bytes * 2)


def feature_matrix(batch: pa.RecordBatch, features: tuple[str, ...]) -> np.ndarray:
    """Columns to a (rows x features) float32 matrix without pandas (vstack, then transpose)."""
    cols = []
    for name in features:
        column = batch.column(name)
        if column.null_count:
            column = column.fill_null(float("nan"))
        cols.append(column.to_numpy(zero_copy_only=False))
    return np.vstack(cols).astype(np.float32, copy=False).T


class _Worker(threading.Thread):
    """A thread that keeps its exception for the caller and raises the shared stop flag."""

    def __init__(self, target: Callable[[], None], name: str, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._fn = target
        self._stop_flag = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            self.error = exc
            self._stop_flag.set()


class InferenceEngine:
    """Scores record batches with a model that maps a float32 matrix to logits."""

    def __init__(self, model: torch.nn.Module, features: tuple[str, ...],
                 config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.device = resolve_device(self.config.device)
        self.features = tuple(features)
        if self.device.type == "cpu":
            keep_allocations_mapped()
            torch.set_num_threads(self.config.num_threads or max(1, os.cpu_count() or 1))
        # A private copy: folding and moving to the device never touch the caller's (cached) model.
        self.model = copy.deepcopy(model).to(self.device).eval()
        if hasattr(self.model, "fold_normalization"):
            self.model.fold_normalization()

    # -- compute ------------------------------------------------------------------------------

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for one matrix, in `forward_rows` slices; backs off on CUDA OOM."""
        out = np.empty(len(x), dtype=np.float32)
        if self.device.type == "cpu":
            xt = torch.from_numpy(x)
            step = self.config.forward_rows
            with torch.inference_mode():
                for start in range(0, len(x), step):
                    logits = self.model(xt[start:start + step])
                    out[start:start + step] = torch.sigmoid(logits).numpy()
            return out
        return self._forward_cuda(x, out)

    def _forward_cuda(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        host = torch.from_numpy(np.ascontiguousarray(x)).pin_memory()
        start = 0
        while start < len(x):
            step = self.config.forward_rows
            try:
                with torch.inference_mode(), torch.autocast(
                    "cuda", dtype=torch.bfloat16, enabled=self.config.autocast_bf16
                ):
                    chunk = host[start:start + step].to(self.device, non_blocking=True)
                    probs = torch.sigmoid(self.model(chunk).float())
                out[start:start + step] = probs.cpu().numpy()
                start += step
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                if step <= 1024:
                    raise
                self.config.forward_rows = step // 2
        return out

    # -- pipeline -----------------------------------------------------------------------------

    def run(self, batches: Iterable[pa.RecordBatch], write: Callable[[pa.RecordBatch], None],
            provenance: Provenance,
            reject: Callable[[RejectedRows], None] | None = None,
            on_batch: Callable[[int], None] | None = None) -> EngineResult:
        """Score every batch and pass output batches to `write` (called from one thread).

        `on_batch(rows)` is called after each scored batch (for progress reporting).
        """
        result = EngineResult(device=str(self.device))
        started = time.perf_counter()
        inbox: queue.Queue = queue.Queue(self.config.queue_depth)
        outbox: queue.Queue = queue.Queue(self.config.queue_depth)
        stop = threading.Event()

        def put(q: queue.Queue, item: object) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def get(q: queue.Queue) -> object:
            while True:
                try:
                    return q.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():
                        return _SENTINEL

        def read() -> None:
            for batch in batches:
                if batch.num_rows and not put(inbox, (batch.column("record_id"),
                                                      feature_matrix(batch, self.features))):
                    return
            put(inbox, _SENTINEL)

        def write_loop() -> None:
            while (item := get(outbox)) is not _SENTINEL:
                write(item)

        reader = _Worker(read, "bi-reader", stop)
        writer = _Worker(write_loop, "bi-writer", stop)
        reader.start()
        writer.start()
        finished = False
        try:
            while not stop.is_set() and (item := get(inbox)) is not _SENTINEL:
                record_ids, x = item
                t0 = time.perf_counter()
                finite = np.isfinite(x).all(axis=1)
                if not finite.all():
                    record_ids, x = self._reject(record_ids, x, finite, reject, result)
                scores = self._forward(x) if len(x) else np.zeros(0, np.float32)
                result.batch_latencies_ms.append((time.perf_counter() - t0) * 1000)
                result.rows_in += len(finite)
                result.rows_scored += len(scores)
                put(outbox, self._output(record_ids, scores, provenance))
                if on_batch is not None:
                    on_batch(len(finite))
            finished = not stop.is_set()
        finally:
            if finished:
                put(outbox, _SENTINEL)  # let the writer drain, then stop
                writer.join()
            stop.set()
            reader.join()
            writer.join()
        for worker in (reader, writer):
            if worker.error is not None:
                raise worker.error
        result.seconds = time.perf_counter() - started
        return result

    def _reject(self, record_ids: pa.Array, x: np.ndarray, finite: np.ndarray,
                reject: Callable[[RejectedRows], None] | None,
                result: EngineResult) -> tuple[pa.Array, np.ndarray]:
        bad = np.flatnonzero(~finite)
        reasons = []
        for row in bad:
            names = [self.features[i] for i in np.flatnonzero(~np.isfinite(x[row]))]
            reasons.append(f"non-finite feature(s): {', '.join(names)}")
        if reject is None:
            raise ValueError(f"{len(bad)} row(s) with non-finite features, e.g. record_id "
                             f"{record_ids[int(bad[0])]}: {reasons[0]}")
        reject(RejectedRows(record_ids.take(pa.array(bad)).to_pylist(), reasons))
        result.rows_rejected += len(bad)
        keep = pa.array(finite)
        return record_ids.filter(keep), np.ascontiguousarray(x[finite])

    @staticmethod
    def _output(record_ids: pa.Array, scores: np.ndarray, provenance: Provenance) -> pa.RecordBatch:
        n = len(scores)
        return pa.record_batch([
            record_ids.cast(pa.string()),
            pa.array(scores, pa.float32()),
            pa.repeat(pa.scalar(provenance.model_name, pa.string()), n),
            pa.repeat(pa.scalar(provenance.model_version, pa.string()), n),
            pa.repeat(pa.scalar(provenance.scored_at, pa.timestamp("us", tz="UTC")), n),
            pa.repeat(pa.scalar(provenance.run_id, pa.string()), n),
        ], schema=OUTPUT_SCHEMA)


def iter_batches(parquet_file, rows: int, columns: list[str],
                 row_groups: Iterable[int] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of at most `rows` rows from a pyarrow ParquetFile, one row group at a time.

    Reading row group by row group keeps memory bounded: asked for the whole file at once,
    pyarrow buffers every selected column chunk of every row group up front.
    """
    groups = range(parquet_file.metadata.num_row_groups) if row_groups is None else row_groups
    for group in groups:
        yield from parquet_file.iter_batches(batch_size=rows, row_groups=[group], columns=columns,
                                             use_threads=True)
