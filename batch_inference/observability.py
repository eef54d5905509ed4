"""Operator-facing signals, no Dagster import: JSON logs, progress with ETA, Pushgateway metrics."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

# Fields our log calls attach (`extra=`) and the formatter lifts to the top level.
LOG_FIELDS = ("partition", "model_version", "stage", "rows_done", "rows_total", "rows_per_second", "eta_seconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, message, run id, job, step, and our fields.

    Use it from dagster.yaml (`python_logs.dagster_handler_config`), see README.
    """

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        payload = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "message": meta.get("orig_message") or record.getMessage(),
            "run_id": meta.get("run_id"),
            "job": meta.get("job_name"),
            "step": meta.get("step_key"),
        }
        for name in LOG_FIELDS:
            if hasattr(record, name):
                payload[name] = getattr(record, name)
        payload.setdefault("stage", meta.get("step_key"))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


JsonFormatter.converter = time.gmtime


class ProgressReporter:
    """Calls `emit` with rows done, rate and ETA at most every `interval_s` seconds (not per batch)."""

    def __init__(self, total_rows: int, emit: Callable[[dict], None], interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total_rows, self.emit, self.interval_s, self.clock = total_rows, emit, interval_s, clock
        self.started = self.last = clock()
        self.done = 0

    def advance(self, rows: int) -> None:
        self.done += rows
        now = self.clock()
        if now - self.last >= self.interval_s:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            remaining = max(self.total_rows - self.done, 0)
            self.emit({"rows_done": self.done, "rows_total": self.total_rows,
                       "rows_per_second": round(rate, 1), "eta_seconds": round(remaining / rate, 1) if rate else None})


def cost_per_million_rows(seconds: float, rows: int, hourly_price: float) -> float:
    """What scoring a million rows cost at `hourly_price` for the device, from this run's speed."""
    return round(seconds / 3600 * hourly_price / rows * 1e6, 6) if rows else 0.0


# --- Pushgateway metrics -------------------------------------------------------------------------------
#
# Every metric is labelled only by low-cardinality labels: `pipeline`, `asset`, `device` and `status`
# (the last one through the Pushgateway grouping key). Partition keys and run ids are values, never
# labels. Each `push_metrics` call replaces its group {job, [pipeline], asset, status}, so a gauge is
# "the latest run's number"; the two counters are read back from the gateway and incremented.

JOB = "batch_inference"
PROGRESS_JOB = "batch_inference_progress"
ALERTING_JOB = "batch_inference_alerting"
CHECKS_JOB = "batch_inference_checks"
COUNTERS_JOB = "batch_inference_counters"
PREFIX = "batch_inference_"

METRICS = {
    "rows": "Rows written by the latest materialization",
    "duration_seconds": "Wall time of the latest materialization",
    "rows_per_second": "Throughput of the latest materialization",
    "quarantined_rows": "Rows quarantined in the latest materialization's partition",
    "resumed_rows": "Rows reused from checkpoints by the latest materialization",
    "cost_per_million_rows": "Device cost per million rows of the latest materialization",
}

# New per-run gauges (same labels as METRICS: pipeline, asset, device). Keys of `values` in push_metrics.
RUN_GAUGES = {
    "rows_in": "Input rows of the latest materialization's partition",
    "scoring_freshness_lag_seconds": "Scoring time minus the newest input event time (feature freshness)",
    "publish_freshness_lag_seconds": "Publish time minus the newest input event time",
    "cpu_utilization_ratio": "Scoring step process CPU time / (wall time * cores), 0..1",
    "gpu_utilization_ratio": "Scoring step GPU utilisation, 0..1 (GPU runs only)",
    "gpu_memory_used_bytes": "Peak GPU memory allocated by the scoring step (GPU runs only)",
    "memory_peak_bytes": "Peak resident memory of the scoring process",
    "memory_limit_bytes": "Memory limit of the scoring process (container limit)",
    "provenance_completeness_ratio": "Share of scored rows with complete provenance fields, 0..1",
    "drift_max_psi": "Largest PSI of the columns whose drift blocks (outputs, critical features) against their reference",
    "checks_failed": "Blocking asset checks that failed on the latest partition",
    "model_untrusted": "1 when the latest run refused the model (artifact digest mismatch / untrusted)",
    "model_version_mismatch": "1 when rows were scored by another version than the champion expected",
    "published_partition_timestamp_seconds": "Start (UTC epoch) of the partition the latest run published",
    "recovery_time_seconds": "First failure of a partition to its next success (latest recovery)",
    "detection_time_seconds": "Run failure to alert notification (pushed by the alerting path)",
}

# Counters: `values[key]` (default 0) is added to the value already in the gateway.
COUNTERS = {
    "storage_errors": "Storage/access errors (S3 AccessDenied, timeouts) seen by runs",
}

# Per-batch scoring durations; buckets span fast CPU batches to pathological stragglers.
BATCH_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def metric_names() -> list[str]:
    """Every metric name (as scraped, histogram series included) that this module can push."""
    names = [*(PREFIX + n for n in (*METRICS, *RUN_GAUGES)),
             *(f"{PREFIX}{n}_total" for n in COUNTERS),
             f"{PREFIX}runs_total", f"{PREFIX}last_run_timestamp_seconds",
             f"{PREFIX}last_success_timestamp_seconds",
             *(f"{PREFIX}batch_duration_seconds{s}" for s in ("_bucket", "_sum", "_count")),
             *(PREFIX + n for n in PROGRESS_GAUGES)]
    return sorted(names)


# --- pure helpers ---------------------------------------------------------------------------------------

Instant = float | dt.datetime


def _epoch(value: Instant) -> float:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware (UTC) datetime")
        return value.timestamp()
    return float(value)


def cpu_utilization(cpu_seconds: float, wall_seconds: float, cores: int) -> float:
    """Process CPU time over what `cores` could do in `wall_seconds`, clipped to [0, 1]."""
    if wall_seconds <= 0 or cores <= 0:
        return 0.0
    return round(min(max(cpu_seconds / (wall_seconds * cores), 0.0), 1.0), 6)


def freshness_lag_seconds(newest_event: Instant, at: Instant) -> float:
    """How stale the data is at `at` (scoring or publish time): `at` minus the newest input event time."""
    return round(_epoch(at) - _epoch(newest_event), 3)


def recovery_time_seconds(events: Iterable[tuple[Instant, bool]]) -> float | None:
    """Seconds from the first failure of the latest failure streak to the success that ended it.

    `events` are (timestamp, succeeded) runs of one partition, in any order. None when the partition
    never failed, or has not recovered yet.
    """
    latest = None
    first_failure: float | None = None
    for ts, ok in sorted((_epoch(t), bool(ok)) for t, ok in events):
        if not ok and first_failure is None:
            first_failure = ts
        elif ok and first_failure is not None:
            latest, first_failure = ts - first_failure, None
    return round(latest, 3) if latest is not None else None


def partition_start_timestamp(partition: str) -> float:
    """UTC epoch seconds of a daily partition key's start (`2026-11-20` -> midnight UTC)."""
    return dt.datetime.strptime(partition, "%Y-%m-%d").replace(tzinfo=dt.UTC).timestamp()


def ratio(part: float, whole: float) -> float:
    """part / whole, 0 when whole is 0 (quarantine rate, completeness)."""
    return round(part / whole, 9) if whole else 0.0


def provenance_completeness(table, columns: Iterable[str]) -> float:
    """Share of rows of a pyarrow `table` whose `columns` are all present, non-null and non-empty."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return 1.0
    complete = None
    for name in columns:
        if name not in table.column_names:
            return 0.0
        col = table.column(name)
        ok = pc.is_valid(col)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            ok = pc.and_(ok, pc.fill_null(pc.greater(pc.utf8_length(col), 0), False))
        complete = ok if complete is None else pc.and_(complete, ok)
    if complete is None:
        return 1.0
    return ratio(pc.sum(pc.cast(complete, "int64")).as_py() or 0, table.num_rows)


class CpuTimer:
    """Measures the process CPU utilisation of a block: `with CpuTimer() as t: ...; t.utilization`."""

    def __init__(self, cores: int | None = None) -> None:
        self.cores = cores or _cores()
        self.cpu_seconds = self.wall_seconds = 0.0

    def __enter__(self) -> CpuTimer:
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_seconds = time.process_time() - self._cpu
        self.wall_seconds = time.perf_counter() - self._wall

    @property
    def utilization(self) -> float:
        return cpu_utilization(self.cpu_seconds, self.wall_seconds, self.cores)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def gpu_stats(device: str) -> dict[str, float]:
    """`gpu_utilization_ratio` / `gpu_memory_used_bytes` for a CUDA device, {} for anything else."""
    if not device.startswith("cuda"):
        return {}
    import torch

    if not torch.cuda.is_available():
        return {}
    stats: dict[str, float] = {"gpu_memory_used_bytes": float(torch.cuda.max_memory_allocated(device))}
    with contextlib.suppress(Exception):  # needs pynvml; utilisation is optional
        stats["gpu_utilization_ratio"] = torch.cuda.utilization(device) / 100.0
    return stats


# --- pushing ---------------------------------------------------------------------------------------------
#
# Pushes are sent by one background thread per process, in order, from a bounded queue, so a
# Pushgateway that accepts connections but never answers cannot stall a run. A push call waits a
# short while (`wait_s`) for its own delivery, so with a healthy gateway it behaves as a synchronous
# call (and a refused connection still raises OSError to the caller); once one push has not been
# delivered within that wait, the gateway is "congested" and later calls return at once until a push
# succeeds again. `flush_pushes` (the ObservabilityResource calls it when a run's resources are torn
# down) waits at most `flush_s` for what is queued, and not at all while congested. A hung gateway
# therefore costs one process at most `wait_s` (0.2 s by default); a full queue drops new pushes,
# and every failure or drop is logged on `batch_inference.observability`.

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushSettings:
    """Bounds of metric delivery: socket timeout per request, the caller's wait, end-of-run flush, queue."""

    timeout_s: float = 2.0
    wait_s: float = 0.2
    flush_s: float = 0.5
    queue_size: int = 64

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.wait_s < 0 or self.flush_s < 0 or self.queue_size < 1:
            raise ValueError(f"invalid push settings {self}: timeouts must be positive, queue_size >= 1")


@dataclass
class _Push:
    send: Callable[[float], None]
    what: str
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class PushSender:
    """One daemon thread delivering pushes in submission order from a bounded queue."""

    def __init__(self, settings: PushSettings | None = None) -> None:
        self.settings = settings or PushSettings()
        self.sent = self.failed = self.dropped = 0
        self.congested = False
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Push] = queue.Queue(maxsize=self.settings.queue_size)
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            if self._pid and self._pid != os.getpid():  # a forked child: the parent's thread is not here
                self._queue = queue.Queue(maxsize=self.settings.queue_size)
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="bi-metrics-push", daemon=True)
            self._thread.start()

    def submit(self, send: Callable[[float], None], what: str) -> _Push | None:
        """Queue `send(timeout_s)`; None (and a warning) when the queue is full and the push is dropped."""
        self._ensure_thread()
        push = _Push(send, what)
        try:
            self._queue.put_nowait(push)
        except queue.Full:
            with self._lock:
                self.dropped += 1
            log.warning("metrics push %s dropped: %d pushes already queued (Pushgateway slow or hung)",
                        what, self.settings.queue_size)
            return None
        return push

    def deliver(self, send: Callable[[float], None], what: str) -> None:
        """Submit, then wait up to `wait_s` for delivery unless congested; re-raise a delivery error."""
        push = self.submit(send, what)
        if push is None or self.congested:
            return
        if not push.done.wait(self.settings.wait_s):
            self.congested = True
            log.warning("metrics push %s not answered within %.1f s; sending in the background",
                        what, self.settings.wait_s)
            return
        if push.error is not None:
            raise push.error

    def _run(self) -> None:
        while True:
            push = self._queue.get()
            try:
                push.send(self.settings.timeout_s)
            except Exception as exc:  # noqa: BLE001 - metrics never fail anything; logged and counted
                push.error = exc
                with self._lock:
                    self.failed += 1
                log.warning("metrics push %s failed: %s: %s", push.what, type(exc).__name__, exc)
            else:
                with self._lock:
                    self.sent += 1
                self.congested = False
            finally:
                push.done.set()
                self._queue.task_done()

    @property
    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every push is done, at most `timeout_s`; by default `flush_s`, or not at all while
        congested (a gateway that does not answer would only make the end of every run wait)."""
        if timeout_s is None and self.congested:
            if self.pending:
                log.warning("%d metrics push(es) still pending: the Pushgateway is not answering", self.pending)
            return not self.pending
        deadline = time.monotonic() + (self.settings.flush_s if timeout_s is None else timeout_s)
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True


_SENDER = PushSender()


def configure_pushes(settings: PushSettings) -> PushSender:
    """Use `settings` for this process's pushes from now on (a queue of another size starts a new sender)."""
    global _SENDER
    if settings.queue_size != _SENDER.settings.queue_size:
        _SENDER.flush(0)
        _SENDER = PushSender(settings)
    else:
        _SENDER.settings = settings
    return _SENDER


def push_sender() -> PushSender:
    """This process's sender (its counters: sent, failed, dropped, pending)."""
    return _SENDER


def flush_pushes(timeout_s: float | None = None) -> bool:
    """Wait a bounded time for queued pushes (see PushSender.flush); True when none is left.

    Tests and scripts that read the gateway right after pushing call it with an explicit timeout."""
    return _SENDER.flush(timeout_s)


def _deliver(send: Callable[[float], None], what: str, timeout: float | None) -> None:
    _SENDER.deliver(send if timeout is None else (lambda _default: send(timeout)), what)


class _Families:
    """A registry-compatible collector holding prebuilt metric families (no `_created` series)."""

    def __init__(self) -> None:
        self.families: list = []

    def collect(self):
        return iter(self.families)


def _gauge(name: str, help_text: str, labels: Mapping[str, str], value: float):
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(PREFIX + name, help_text, labels=list(labels))
    family.add_metric(list(labels.values()), float(value))
    return family


def _group(pipeline: str, asset: str, status: str = "") -> dict[str, str]:
    key = {"pipeline": pipeline} if pipeline else {}
    return {**key, "asset": asset, **({"status": status} if status else {})}


def _push(url: str, job: str, group: Mapping[str, str], families: list, timeout: float) -> None:
    from prometheus_client import CollectorRegistry, push_to_gateway

    collector = _Families()
    collector.families = families
    registry = CollectorRegistry()
    registry.register(collector)
    push_to_gateway(url, job=job, grouping_key=dict(group), registry=registry, timeout=timeout)


def _current_counters(url: str, group: Mapping[str, str], timeout: float) -> dict[tuple, float]:
    """Counter samples the gateway holds now in the counters group: {(name, status): value}."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    base = url if "://" in url else f"http://{url}"
    with urllib.request.urlopen(f"{base.rstrip('/')}/metrics", timeout=timeout) as response:  # noqa: S310
        text = response.read().decode()
    match = {"job": COUNTERS_JOB, "pipeline": "", **group}
    found: dict[tuple, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(PREFIX) and sample.name.endswith("_total") and all(
                    sample.labels.get(k, "") == v for k, v in match.items()):
                found[(sample.name, sample.labels.get("status", ""))] = sample.value
    return found


def _count(url: str, pipeline: str, asset: str, status: str, increments: Mapping[str, float],
           run_ended: bool, timeout: float) -> None:
    """Read the counters group back, add this run's increments, push it again.

    Both `runs_total{status="success"}` and `{status="failure"}` are always present (0 until the first
    one), so `increase()` sees a failure from the first one on.
    """
    from prometheus_client.core import CounterMetricFamily

    group = _group(pipeline, asset)
    current = _current_counters(url, group, timeout)
    labels = {"pipeline": pipeline, "asset": asset}
    runs = CounterMetricFamily(f"{PREFIX}runs", "Runs that ended, by status", labels=[*labels, "status"])
    for outcome in ("success", "failure"):
        value = current.get((f"{PREFIX}runs_total", outcome), 0.0)
        runs.add_metric([*labels.values(), outcome], value + (1.0 if run_ended and status == outcome else 0.0))
    families = [runs]
    for name, help_text in COUNTERS.items():
        family = CounterMetricFamily(PREFIX + name, help_text, labels=list(labels))
        family.add_metric(list(labels.values()),
                          current.get((f"{PREFIX}{name}_total", ""), 0.0) + float(increments.get(name) or 0))
        families.append(family)
    _push(url, COUNTERS_JOB, group, families, timeout)


def push_metrics(url: str, asset: str, values: Mapping[str, float], status: str = "success",
                 device: str = "cpu", pipeline: str = "", batch_durations_s: Iterable[float] | None = None,
                 *, job: str = JOB, run_ended: bool = True, timeout: float | None = None) -> None:
    """Push one run's numbers to a Prometheus Pushgateway, replacing the group {job, [pipeline], asset, status}.

    `values` may hold any key of METRICS / RUN_GAUGES (others are ignored, so callers can pass all
    numeric metadata) and of COUNTERS (added to the gateway's current count). `batch_durations_s` become
    the `batch_inference_batch_duration_seconds` histogram. With `run_ended` (a run's final push) it also
    sets `batch_inference_last_run_timestamp_seconds{status}` (on success
    `batch_inference_last_success_timestamp_seconds` too) and increments `batch_inference_runs_total
    {status}` in the job `batch_inference_counters`: read back from the gateway and pushed again, best
    effort (concurrent pushes for one asset can lose an increment; Dagster's run history is the truth).

    Labels stay low-cardinality (pipeline, asset, device, status): partitions and run ids are not labels.
    Sent in the background (see "pushing" above): a delivery error seen within the short wait raises
    OSError, which callers log and never fail a run on; a gateway that does not answer costs no more
    than that wait. `timeout` overrides the sender's socket timeout for this push.
    """
    from prometheus_client.core import HistogramMetricFamily

    run_labels = {"pipeline": pipeline, "asset": asset, "device": device}
    families = [_gauge(name, help_text, run_labels, values[name])
                for name, help_text in {**METRICS, **RUN_GAUGES}.items()
                if values.get(name) is not None]
    now = time.time()
    if run_ended:
        families.append(_gauge("last_run_timestamp_seconds", "When the latest materialization ended",
                               {"pipeline": pipeline, "asset": asset, "status": status}, now))
        if status == "success":
            families.append(_gauge("last_success_timestamp_seconds", "When the latest successful run ended",
                                   {"pipeline": pipeline, "asset": asset}, now))
    if batch_durations_s is not None:
        durations = [float(d) for d in batch_durations_s]
        family = HistogramMetricFamily(f"{PREFIX}batch_duration_seconds",
                                       "Per-batch scoring durations of the latest run (stragglers)",
                                       labels=list(run_labels))
        buckets = [(str(b), sum(d <= b for d in durations)) for b in BATCH_DURATION_BUCKETS]
        family.add_metric(list(run_labels.values()), [*buckets, ("+Inf", len(durations))], sum(durations))
        families.append(family)
    increments = {n: values[n] for n in COUNTERS if values.get(n)}

    def send(timeout_s: float) -> None:
        _push(url, job, _group(pipeline, asset, status), families, timeout_s)
        if run_ended or increments:
            _count(url, pipeline, asset, status, increments, run_ended, timeout_s)

    _deliver(send, f"{job}/{pipeline}/{asset}", timeout)


def push_check_metrics(url: str, asset: str, values: Mapping[str, float], pipeline: str = "",
                       timeout: float | None = None) -> None:
    """From the blocking checks: `drift_max_psi`, `checks_failed`, `model_version_mismatch`,
    `provenance_completeness_ratio` of the latest evaluation (job `batch_inference_checks`)."""
    push_metrics(url, asset, values, status="", device="", pipeline=pipeline, job=CHECKS_JOB, run_ended=False,
                 timeout=timeout)


def push_detection_time(url: str, asset: str, seconds: float, pipeline: str = "",
                        timeout: float | None = None) -> None:
    """From the alerting path: how long a failure took to reach a notification (job `batch_inference_alerting`)."""
    push_metrics(url, asset, {"detection_time_seconds": seconds}, status="", device="", pipeline=pipeline,
                 job=ALERTING_JOB, run_ended=False, timeout=timeout)


PROGRESS_GAUGES = {
    "running": "1 while a run of this asset is scoring, 0 once it reported its end",
    "progress_rows": "Rows done by the latest progress report",
    "progress_expected_rows": "Rows the reporting run expects in total",
    "last_progress_timestamp_seconds": "When the latest progress report was pushed",
    "progress_cpu_utilization_ratio": "CPU utilisation of the scoring step so far, 0..1",
    "progress_gpu_utilization_ratio": "GPU utilisation of the scoring step so far, 0..1",
}


def push_progress(url: str, asset: str, rows_done: int, rows_total: int | None = None, *, running: bool = True,
                  pipeline: str = "", device: str = "cpu", cpu_utilization_ratio: float | None = None,
                  gpu_utilization_ratio: float | None = None, timeout: float | None = None) -> None:
    """Heartbeat of a scoring run (call it from ProgressReporter's `emit`, and with running=False at the end).

    A run that dies (OOM kill) or hangs leaves `running` at 1 and a stale
    `batch_inference_last_progress_timestamp_seconds`: the stuck-run alert (F7). One group per
    (pipeline, asset): with concurrent runs of one asset the latest report wins.
    """
    labels = {"pipeline": pipeline, "asset": asset, "device": device}
    numbers = {"running": 1.0 if running else 0.0, "progress_rows": rows_done, "progress_expected_rows": rows_total,
               "last_progress_timestamp_seconds": time.time(),
               "progress_cpu_utilization_ratio": cpu_utilization_ratio,
               "progress_gpu_utilization_ratio": gpu_utilization_ratio}
    families = [_gauge(n, PROGRESS_GAUGES[n], labels, v) for n, v in numbers.items() if v is not None]
    _deliver(lambda timeout_s: _push(url, PROGRESS_JOB, _group(pipeline, asset), families, timeout_s),
             f"{PROGRESS_JOB}/{pipeline}/{asset}", timeout)
