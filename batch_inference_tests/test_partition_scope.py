"""The partition scope on a real instance: which days a step covers, and each day's outcome recorded."""

import dagster as dg
import pytest

from batch_inference.components.partition_scope import (
    FAILED_PARTITIONS,
    failed_partitions_of_run,
    materialize,
    partitions_of_run,
    scope_of,
)

DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01")
DAYS = ["2026-04-01", "2026-04-02", "2026-04-03"]
BAD_DAY = DAYS[1]
SEEN: dict[str, object] = {}


def _range(days: list[str]) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}


def _work(day: str) -> dict:
    if day == BAD_DAY:
        raise dg.Failure(f"landing file for {day} is truncated. Runbook: docs/runbooks/F2.md", allow_retries=False)
    return {"rows": int(day[-2:])}


@dg.asset(partitions_def=DAILY, output_required=False)
def upstream(context: dg.AssetExecutionContext):
    scope = scope_of(context)
    SEEN[context.run.run_id] = scope
    yield from materialize(context, scope, context.asset_key, _work)


@dg.asset(partitions_def=DAILY, deps=[upstream], output_required=False)
def downstream(context: dg.AssetExecutionContext):
    yield from materialize(context, scope_of(context), context.asset_key, lambda day: {"rows": 1})


DEFS = dg.Definitions(assets=[upstream, downstream], jobs=[dg.define_asset_job("chain", [upstream, downstream]),
                                                           dg.define_asset_job("alone", [upstream])])


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _materialized(instance, asset: str) -> dict[str, int]:
    found = {}
    for day in DAYS:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[day]), limit=1).records
        if records:
            found[day] = records[0].asset_materialization.metadata["rows"].value
    return found


def _failure_metadata(result) -> dict:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return {k: v.value for k, v in failure.step_failure_data.user_failure_data.metadata.items()}


def test_a_single_partition_run_covers_its_day_and_fails_as_the_work_does(instance):
    result = DEFS.resolve_job_def("alone").execute_in_process(instance=instance, partition_key=DAYS[0])
    scope = SEEN[result.run_id]
    assert scope.days == (DAYS[0],) and scope.single and not scope.reuse_committed and not scope.live
    assert _materialized(instance, "upstream") == {DAYS[0]: 1}
    failed = DEFS.resolve_job_def("alone").execute_in_process(instance=instance, partition_key=BAD_DAY,
                                                               raise_on_error=False)
    assert not failed.success and "truncated" in str(failed.failure_data_for_node("upstream").error)
    assert FAILED_PARTITIONS not in _failure_metadata(failed)  # the work's own failure, as it is


def test_a_one_day_range_is_a_ranged_scope():
    """A `multi_run(1)` backfill run carries range tags, not `dagster/partition`."""
    run = dg.DagsterRun(job_name="x", tags=_range([DAYS[0]]))
    assert partitions_of_run(run) == [DAYS[0]]
    with dg.instance_for_test() as instance:
        result = DEFS.resolve_job_def("chain").execute_in_process(instance=instance, tags=_range([DAYS[0]]))
    assert result.success and SEEN[result.run_id].ranged and SEEN[result.run_id].reuse_committed


def test_a_bad_day_in_a_range_fails_alone_and_the_others_are_recorded_with_their_figures(instance):
    result = DEFS.resolve_job_def("alone").execute_in_process(instance=instance, tags=_range(DAYS),
                                                               raise_on_error=False)
    assert not result.success
    assert SEEN[result.run_id].live  # nothing else in the run waits for the step
    assert _materialized(instance, "upstream") == {DAYS[0]: 1, DAYS[2]: 3}
    metadata = _failure_metadata(result)
    assert metadata[FAILED_PARTITIONS] == BAD_DAY and metadata["runbook"] == "docs/runbooks/F2.md"
    run = instance.get_run_by_id(result.run_id)
    assert partitions_of_run(run) == DAYS
    assert failed_partitions_of_run(instance, run) == [BAD_DAY]


def test_with_a_dependent_in_the_run_the_range_is_recorded_at_the_end_and_its_downstream_waits(instance):
    result = DEFS.resolve_job_def("chain").execute_in_process(instance=instance, tags=_range(DAYS),
                                                               raise_on_error=False)
    assert not SEEN[result.run_id].live
    assert _materialized(instance, "upstream") == {DAYS[0]: 1, DAYS[2]: 3}
    assert _materialized(instance, "downstream") == {}  # Dagster skips a failed step's dependents

    ok = DEFS.resolve_job_def("chain").execute_in_process(instance=instance, tags=_range([DAYS[2]]))
    assert ok.success and _materialized(instance, "downstream") == {DAYS[2]: 1}


def test_partitions_of_a_run_without_partition_tags_are_none():
    assert partitions_of_run(dg.DagsterRun(job_name="x")) == []
    assert partitions_of_run(dg.DagsterRun(job_name="x", tags={"dagster/partition": DAYS[1]})) == [DAYS[1]]
