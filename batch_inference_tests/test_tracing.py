"""Tracing: off and free by default; with an in-memory exporter, nested stage spans carry pipeline/partition."""

from __future__ import annotations

import subprocess
import sys

import pytest

from batch_inference import tracing


@pytest.fixture
def exporter():
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    tracing.configure(memory)
    yield memory
    tracing.disable()


def test_disabled_by_default_and_imports_nothing():
    code = ("import os, sys; [os.environ.pop(v, None) for v in ('OTEL_EXPORTER_OTLP_ENDPOINT', "
            "'BATCH_INFERENCE_OTLP_ENDPOINT')]\n"
            "from batch_inference import tracing\n"
            "with tracing.span('read', pipeline='p') as s: assert s is None\n"
            "assert not tracing.enabled()\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_nested_stage_spans_for_one_partition(exporter):
    with tracing.span("partition", pipeline="card_fraud", partition="2026-11-20", asset="predictions"):
        with tracing.span("model_load", model_version="3"):
            pass
        for stage in ("read", "forward", "write", "commit", "checks", "publish"):
            with tracing.span(stage, rows=1000 if stage == "forward" else None):
                pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"partition", *tracing.STAGES}
    root = spans["partition"]
    assert root.parent is None
    for stage in tracing.STAGES:
        child = spans[stage]
        assert child.parent.span_id == root.context.span_id and child.context.trace_id == root.context.trace_id
        assert child.attributes["pipeline"] == "card_fraud" and child.attributes["partition"] == "2026-11-20"
    assert spans["model_load"].attributes["model_version"] == "3"
    assert spans["forward"].attributes["rows"] == 1000 and "rows" not in spans["read"].attributes
    assert root.resource.attributes["service.name"] == "batch_inference"


def test_errors_are_recorded_and_reraised(exporter):
    with pytest.raises(RuntimeError), tracing.span("write", pipeline="card_fraud", partition="2026-11-20"):
        raise RuntimeError("disk full")
    (span,) = exporter.get_finished_spans()
    assert not span.status.is_ok and span.events[0].name == "exception"


def test_endpoint_without_exporter_package_stays_off(monkeypatch):
    tracing.disable()
    monkeypatch.setitem(tracing._state, "checked_env", False)
    monkeypatch.setenv("BATCH_INFERENCE_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    try:
        import opentelemetry.exporter.otlp.proto.http  # noqa: F401
    except ImportError:
        installed = False
    else:
        installed = True
    assert tracing.enabled() is installed  # no span exported: nothing to flush to the closed port
    tracing.disable()
    with tracing.span("read") as span:
        assert span is None
