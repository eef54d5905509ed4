"""The batch inference engine: stream Parquet record batches through a torch model and out.

No Dagster here, and no example names: what the rows mean is the plug-ins' business. An
*input adapter* turns each record batch into forward chunks (in the reader thread), the calling
thread runs the model and the *output head* on the device (torch and pyarrow both release the
GIL), and a writer thread builds and writes the output batches with their provenance columns.
Memory is bounded by the queue depth, not by the partition size.
"""

from __future__ import annotations

import contextvars
import copy
import ctypes
import datetime as dt
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from batch_inference.inference.schema import output_schema
from batch_inference.plugins.protocols import InputAdapter, OutputHead, Prepared
from batch_inference.tracing import span

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
    min_forward_rows: int = 16  # OOM back-off stops here


@dataclass
class Provenance:
    model_name: str
    model_version: str
    run_id: str
    scored_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


@dataclass
class RejectedRows:
    """Rows the adapter refused (a null text, a non-finite feature), with the reason."""

    record_ids: list[str]
    reasons: list[str]


@dataclass
class EngineResult:
    rows_in: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    seconds: float = 0.0
    forward_seconds: float = 0.0
    device: str = "cpu"
    batch_latencies_ms: list[float] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    shadow_forward_seconds: float = 0.0  # the shadow (challenger) model's forward passes

    @property
    def rows_per_second(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0

    def add(self, other: EngineResult) -> None:
        """Accumulate another result (one checkpoint chunk) into this one."""
        self.rows_in += other.rows_in
        self.rows_scored += other.rows_scored
        self.rows_rejected += other.rows_rejected
        self.seconds += other.seconds
        self.forward_seconds += other.forward_seconds
        self.shadow_forward_seconds += other.shadow_forward_seconds
        self.batch_latencies_ms.extend(other.batch_latencies_ms)
        for key, value in other.stats.items():
            self.stats[key] = self.stats.get(key, 0) + value


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


def _as_tensor(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, dict):
        return {k: _as_tensor(v) for k, v in value.items()}
    return value


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        if device.type == "cpu":
            return value
        return value.pin_memory().to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


def _rows_of(chunk: Any) -> int:
    if isinstance(chunk, dict):
        return len(next(iter(chunk.values())))
    return len(chunk)


def _halves(chunk: Any) -> tuple[Any, Any]:
    """Split a forward chunk (tensor or dict of tensors) in two along the rows."""
    mid = _rows_of(chunk) // 2
    if isinstance(chunk, dict):
        return {k: v[:mid] for k, v in chunk.items()}, {k: v[mid:] for k, v in chunk.items()}
    return chunk[:mid], chunk[mid:]


class _Worker(threading.Thread):
    """A thread that keeps its exception for the caller and raises the shared stop flag."""

    def __init__(self, target: Callable[[], None], name: str, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._fn = target
        self._stop_flag = stop
        self._context = contextvars.copy_context()  # trace spans nest under the caller's
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._context.run(self._fn)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            self.error = exc
            self._stop_flag.set()


class InferenceEngine:
    """Scores record batches: adapter -> model -> head, with provenance on every output row."""

    def __init__(self, model: torch.nn.Module, adapter: InputAdapter, head: OutputHead,
                 config: EngineConfig | None = None, fold: bool = True, key: str = "record_id") -> None:
        self.config = config or EngineConfig()
        self.device = resolve_device(self.config.device)
        self.adapter, self.head, self.key = adapter, head, key
        self.output_schema = output_schema(head, key)
        if self.device.type == "cpu":
            keep_allocations_mapped()
            torch.set_num_threads(self.config.num_threads or max(1, os.cpu_count() or 1))
        # A private copy: folding and moving to the device never touch the caller's (cached) model.
        self.model = copy.deepcopy(model).to(self.device).eval()
        if fold and hasattr(self.model, "fold_normalization"):
            self.model.fold_normalization()
        self.shadow: InferenceEngine | None = None

    def with_shadow(self, shadow: InferenceEngine) -> InferenceEngine:
        """Score every batch with `shadow` too (a challenger): the same read batches, the same device.

        When the shadow's adapter does what this one does (same fingerprint) it reuses the prepared
        chunks; otherwise it prepares the same record batch itself, in the reader thread.
        """
        if shadow.device != self.device:
            raise ValueError(f"the shadow model runs on {shadow.device}, the engine on {self.device}")
        self.shadow = shadow
        return self

    @property
    def columns(self) -> tuple[str, ...]:
        """Input columns the adapters read, the shadow's included (the engine reads the row key `key`
        first, then these)."""
        extra = tuple(c for c in (self.shadow.columns if self.shadow else ()) if c not in self.adapter.columns)
        return tuple(self.adapter.columns) + extra

    def fingerprint(self) -> str:
        """What the output depends on besides the input and the model: the adapter and the head."""
        head = self.head
        params = sorted((k, repr(v)) for k, v in vars(head).items()) if hasattr(head, "__dict__") else []
        return (f"{self.adapter.fingerprint()}|{type(head).__module__}.{type(head).__qualname__}:{params}|"
                f"{self.output_schema}")

    # -- compute ------------------------------------------------------------------------------

    def forward(self, prepared: Prepared) -> np.ndarray:
        """Head output for every kept row of a prepared batch, in the kept rows' input order."""
        parts = [self._forward_chunk(_as_tensor(chunk)) for chunk in prepared.chunks]
        values = np.concatenate(parts) if parts else np.zeros((0,), np.float32)
        if prepared.order is not None and len(values):
            restored = np.empty_like(values)
            restored[prepared.order] = values
            values = restored
        return values

    def _forward_chunk(self, chunk: Any) -> np.ndarray:
        if self.device.type == "cpu":
            with torch.inference_mode():
                return self.head.transform(self.model(chunk)).numpy()
        try:
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16,
                                                        enabled=self.config.autocast_bf16):
                out = self.head.transform(self.model(_to_device(chunk, self.device)).float())
            return out.float().cpu().numpy()
        except torch.cuda.OutOfMemoryError:
            # Halve this chunk only: the shared config (read by the reader thread) never changes, so
            # the rows of every later batch, and of a resumed run, are chunked the same way.
            torch.cuda.empty_cache()
            if _rows_of(chunk) <= self.config.min_forward_rows:
                raise
            first, second = _halves(chunk)
            return np.concatenate([self._forward_chunk(first), self._forward_chunk(second)])

    # -- pipeline -----------------------------------------------------------------------------

    def run(self, batches: Iterable[pa.RecordBatch], write: Callable[[pa.RecordBatch], None],
            provenance: Provenance,
            reject: Callable[[RejectedRows], None] | None = None,
            on_batch: Callable[[int], None] | None = None,
            shadow_write: Callable[[pa.RecordBatch], None] | None = None,
            shadow_provenance: Provenance | None = None) -> EngineResult:
        """Score every batch and pass output batches to `write` (called from one thread).

        `reject` receives the rows the adapter refused (without it, such a row is an error);
        `on_batch(rows)` is called after each scored batch (for progress reporting). With a shadow
        engine (`with_shadow`), its outputs of the same batches go to `shadow_write`.
        """
        if self.shadow is not None and shadow_write is None:
            raise ValueError("the engine has a shadow model: pass shadow_write for its outputs")
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
            with span("read"):
                for batch in batches:
                    if batch.num_rows and not put(inbox, (batch.num_rows,
                                                          self.adapter.prepare(batch, self.config.forward_rows),
                                                          self._shadow_prepare(batch))):
                        return
                put(inbox, _SENTINEL)

        def write_loop() -> None:
            with span("write"):
                while (item := get(outbox)) is not _SENTINEL:
                    record_ids, values, shadow_out = item
                    write(self._output(record_ids, values, provenance))
                    if shadow_out is not None and self.shadow is not None and shadow_write is not None:
                        shadow_write(self.shadow._output(*shadow_out, shadow_provenance or provenance))

        reader = _Worker(read, "bi-reader", stop)
        writer = _Worker(write_loop, "bi-writer", stop)
        reader.start()
        writer.start()
        finished = False
        try:
            with span("forward", device=str(self.device)):
                self._forward_loop(get, put, inbox, outbox, stop, result, reject, on_batch)
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

    def _forward_loop(self, get, put, inbox: queue.Queue, outbox: queue.Queue, stop: threading.Event,
                      result: EngineResult, reject, on_batch) -> None:
        """The calling thread's part: forward every prepared batch and hand the outputs on."""
        while not stop.is_set() and (item := get(inbox)) is not _SENTINEL:
            rows, prepared, shadow_prepared = item
            if prepared.rejected_ids:
                if reject is None:
                    raise ValueError(f"{len(prepared.rejected_ids)} row(s) refused, e.g. {self.key} "
                                     f"{prepared.rejected_ids[0]}: {prepared.rejected_reasons[0]}")
                reject(RejectedRows(list(prepared.rejected_ids), list(prepared.rejected_reasons)))
            t0 = time.perf_counter()
            values = self.forward(prepared)
            elapsed = time.perf_counter() - t0
            result.forward_seconds += elapsed
            result.batch_latencies_ms.append(elapsed * 1000)
            shadow_out = None
            if self.shadow is not None:
                t0 = time.perf_counter()
                own = shadow_prepared if shadow_prepared is not None else prepared
                shadow_out = (own.record_ids, self.shadow.forward(own))
                result.shadow_forward_seconds += time.perf_counter() - t0
            result.rows_in += rows
            result.rows_scored += prepared.rows
            result.rows_rejected += len(prepared.rejected_ids)
            for key, value in prepared.stats.items():
                result.stats[key] = result.stats.get(key, 0) + int(value)
            put(outbox, (prepared.record_ids, values, shadow_out))
            if on_batch is not None:
                on_batch(rows)

    def _shadow_prepare(self, batch: pa.RecordBatch) -> Prepared | None:
        """The shadow's own input for a batch, when its adapter differs from this engine's."""
        if self.shadow is None or self.shadow.adapter.fingerprint() == self.adapter.fingerprint():
            return None
        return self.shadow.adapter.prepare(batch, self.config.forward_rows)

    def _output(self, record_ids: pa.Array, values: np.ndarray, provenance: Provenance) -> pa.RecordBatch:
        n = len(record_ids)
        columns = self.head.to_columns(values) if n else [pa.array([], f.type) for f in self.head.fields()]
        return pa.record_batch([
            record_ids.cast(pa.string()),
            *columns,
            pa.repeat(pa.scalar(provenance.model_name, pa.string()), n),
            pa.repeat(pa.scalar(provenance.model_version, pa.string()), n),
            pa.repeat(pa.scalar(provenance.scored_at, pa.timestamp("us", tz="UTC")), n),
            pa.repeat(pa.scalar(provenance.run_id, pa.string()), n),
        ], schema=self.output_schema)


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
