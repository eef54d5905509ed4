"""Operator-facing signals, no Dagster import: JSON logs, progress with ETA, Pushgateway metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping

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


METRICS = {
    "rows": "Rows written by the latest materialization",
    "duration_seconds": "Wall time of the latest materialization",
    "rows_per_second": "Throughput of the latest materialization",
    "quarantined_rows": "Rows quarantined in the latest materialization's partition",
    "resumed_rows": "Rows reused from checkpoints by the latest materialization",
    "cost_per_million_rows": "Device cost per million rows of the latest materialization",
}


def push_metrics(url: str, asset: str, values: Mapping[str, float], status: str = "success",
                 device: str = "cpu") -> None:
    """Push the latest materialization's numbers to a Prometheus Pushgateway.

    Labels stay low-cardinality (asset, device, status): partitions and run ids are not labels.
    """
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    labels = {"asset": asset, "device": device}
    for name, help_text in METRICS.items():
        if name in values:
            Gauge(f"batch_inference_{name}", help_text, list(labels), registry=registry).labels(**labels).set(
                float(values[name]))
    Gauge("batch_inference_last_run_timestamp_seconds", "When the latest materialization ended",
          ["asset", "status"], registry=registry).labels(asset=asset, status=status).set_to_current_time()
    push_to_gateway(url, job="batch_inference", grouping_key={"asset": asset, "status": status},
                    registry=registry, timeout=5)
