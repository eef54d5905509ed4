"""Trace spans of one partition, captured with the OpenTelemetry SDK's in-memory exporter."""

import pytest

from batch_inference import tracing
from batch_inference_tests.conftest import job, project_defs

pytestmark = pytest.mark.integration  # end to end through Dagster: the full tier (`make test`)


@pytest.fixture
def exporter():
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    tracing.configure(memory)
    yield memory
    tracing.disable()


def test_one_partition_has_a_span_per_stage(home, landed, registry, dagster_instance, exporter):
    defs = project_defs(home)
    day = landed[0]
    assert defs.resolve_job_def(job("ingest_day")).execute_in_process(partition_key=day, instance=dagster_instance).success
    assert defs.resolve_job_def(job("score_day")).execute_in_process(partition_key=day, instance=dagster_instance).success
    spans = exporter.get_finished_spans()
    names = {s.name for s in spans}
    assert {"score", "partition", "model_load", "chunk", "read", "forward", "write", "commit", "checks",
            "publish"} <= names
    root = next(s for s in spans if s.name == "score")  # the scoring step: one model load, its partitions
    assert root.attributes["pipeline"] == "card_fraud" and root.attributes["partitions"] == 1
    by_id = {s.context.span_id: s for s in spans}
    load = next(s for s in spans if s.name == "model_load")
    assert load.context.trace_id == root.context.trace_id and load.parent.span_id == root.context.span_id
    partition = next(s for s in spans if s.name == "partition")
    assert partition.attributes["partition"] == day and partition.attributes["pipeline"] == "card_fraud"
    for name in ("chunk", "read", "forward", "write", "commit"):
        child = next(s for s in spans if s.name == name)
        assert child.context.trace_id == root.context.trace_id, name
        assert child.attributes["partition"] == day, name
        parent = child.parent and by_id.get(child.parent.span_id)
        assert parent is not None, name
    for name in ("checks", "publish"):
        assert next(s for s in spans if s.name == name).attributes["partition"] == day, name
