"""OpenTelemetry spans for the stages of a partition: model_load, read, forward, write, commit, checks, publish.

Off by default: `span()` is a no-op context manager costing one dict lookup, and nothing from
opentelemetry is imported. Tracing turns on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`BATCH_INFERENCE_OTLP_ENDPOINT`) is set, exporting over OTLP/HTTP when
`opentelemetry-exporter-otlp-proto-http` is installed; tests call `configure(exporter)` with an
in-memory exporter. Attributes stay small: pipeline, partition, asset, rows, model_version.

    with span("partition", pipeline="my_pipeline", partition="2026-11-20"):
        with span("model_load", model_version="3"):
            ...
        with span("forward", rows=n):
            ...
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

STAGES = ("model_load", "read", "forward", "write", "commit", "checks", "publish")
SERVICE_NAME = "batch_inference"
INHERITED = ("pipeline", "partition", "asset")  # copied from a parent span onto its children

_inherited: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("bi_trace_attrs", default=None)

_state: dict[str, Any] = {"tracer": None, "checked_env": False, "provider": None}


def configure(exporter: Any = None, service_name: str = SERVICE_NAME) -> Any:
    """Turn tracing on with `exporter` (synchronous export), or the OTLP exporter from the environment.

    Returns the tracer, or None when no exporter is available (tracing stays off).
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    processor = None
    if exporter is not None:
        processor = SimpleSpanProcessor(exporter)
    else:
        endpoint = _endpoint()
        if endpoint:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                return None
            url = endpoint.rstrip("/")
            processor = BatchSpanProcessor(OTLPSpanExporter(
                endpoint=url if url.endswith("/v1/traces") else f"{url}/v1/traces"))
    if processor is None:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(processor)
    # A private provider (not the global one), so tests can reconfigure and dagster/mlflow are untouched.
    _state.update(tracer=provider.get_tracer("batch_inference.tracing"), provider=provider, checked_env=True)
    return _state["tracer"]


def disable() -> None:
    """Back to the no-op default (flushes a configured provider)."""
    provider = _state.get("provider")
    if provider is not None:
        provider.shutdown()
    _state.update(tracer=None, provider=None, checked_env=True)


def enabled() -> bool:
    return _tracer() is not None


def _endpoint() -> str:
    from batch_inference.settings import load_settings

    return load_settings().otlp_endpoint


def _tracer() -> Any:
    if _state["tracer"] is None and not _state["checked_env"]:
        _state["checked_env"] = True
        if _endpoint():
            with contextlib.suppress(ImportError):
                configure()
    return _state["tracer"]


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span named `name` nested under the current one; yields it (None when tracing is off).

    Exceptions are recorded on the span and re-raised. None-valued attributes are dropped; pipeline,
    partition and asset are inherited from the enclosing span.
    """
    tracer = _tracer()
    if tracer is None:
        yield None
        return
    attrs = {**(_inherited.get() or {}), **{k: v if isinstance(v, bool | int | float | str) else str(v)
                                    for k, v in attributes.items() if v is not None}}
    token = _inherited.set({k: attrs[k] for k in INHERITED if k in attrs})
    try:
        with tracer.start_as_current_span(name, attributes=attrs) as current:
            yield current
    finally:
        _inherited.reset(token)
