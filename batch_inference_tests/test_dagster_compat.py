"""Pins what `batch_inference.dagster_compat` relies on, against a real instance of the pinned Dagster.

A Dagster upgrade starts here: each test names the internal behaviour it depends on.
"""

import warnings

import dagster as dg
import pytest

from batch_inference import dagster_compat as compat

DAYS = ["2026-03-01", "2026-03-02", "2026-03-03"]
DAILY = dg.DailyPartitionsDefinition(start_date="2026-01-01")
ASSET = dg.AssetKey("probe")
CHECK = dg.AssetCheckKey(ASSET, "probe_ok")
RANGE_TAGS = {"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]}


def test_the_pinned_dagster_version_is_installed():
    assert dg.__version__ == compat.PINNED_DAGSTER_VERSION


@dg.asset(key=ASSET, partitions_def=DAILY)
def probe(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    for day in context.partition_keys:
        context.add_asset_metadata({"day": day}, partition_key=day)
    return dg.MaterializeResult()


@dg.asset(partitions_def=DAILY, deps=[probe])
def probe_child(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    context.add_output_metadata({"assets_in_run": ",".join(sorted(k.to_user_string()
                                                                  for k in compat.assets_in_run(context)))})
    return dg.MaterializeResult()


with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    SPEC = dg.AssetCheckSpec(CHECK.name, asset=ASSET, blocking=True, partitions_def=DAILY)


@dg.multi_asset_check(specs=[SPEC], can_subset=True)
def probe_checks(context: dg.AssetCheckExecutionContext):
    """Day 1 passes, day 2 fails; day 3 gets no result (planned only)."""
    for day, passed in zip(DAYS[:2], (True, False), strict=True):
        yield compat.check_evaluation(context.instance, CHECK, dg.AssetCheckResult(passed=passed, metadata={"n": 1}),
                                      day, blocking=False)


DEFS = dg.Definitions(assets=[probe, probe_child], asset_checks=[probe_checks],
                      jobs=[dg.define_asset_job("probe_job", [probe, probe_child]),
                            dg.define_asset_job("probe_checked", dg.AssetSelection.assets(probe)
                                                | dg.AssetSelection.checks_for_assets(probe))])


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _latest_storage_id(instance, day: str) -> int:
    return instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=ASSET, asset_partitions=[day]), limit=1).records[0].storage_id


def test_check_records_per_partition_aim_at_that_partitions_materialization(instance):
    result = DEFS.resolve_job_def("probe_checked").execute_in_process(instance=instance, tags=RANGE_TAGS)
    assert result.success
    latest = compat.latest_check_executions(instance, [CHECK, dg.AssetCheckKey(ASSET, "never_run")], DAYS[0])
    assert set(latest) == {CHECK}  # a check that never ran has no record
    first = latest[CHECK]
    assert not first.planned_only and first.evaluation.passed and first.run_id == result.run_id
    assert first.target_storage_id == _latest_storage_id(instance, DAYS[0])
    assert first.evaluation.metadata["n"].value == 1  # metadata normalized to MetadataValues

    second = compat.latest_check_executions(instance, [CHECK], DAYS[1])[CHECK]
    assert not second.evaluation.passed and second.evaluation.partition == DAYS[1]
    assert second.target_storage_id == _latest_storage_id(instance, DAYS[1])
    assert compat.latest_check_evaluation(instance, CHECK, DAYS[1]).passed is False

    # A ranged run plans the check for every partition of its range; day 3 got no result.
    third = compat.latest_check_executions(instance, [CHECK], DAYS[2])[CHECK]
    assert third.planned_only and third.evaluation is None and third.run_id == result.run_id
    assert compat.latest_check_evaluation(instance, CHECK, DAYS[2]) is None


def test_an_evaluation_without_a_materialization_has_no_target(instance):
    evaluation = compat.check_evaluation(instance, CHECK, dg.AssetCheckResult(passed=True), DAYS[0], blocking=True)
    assert evaluation.target_materialization_data is None and evaluation.blocking and evaluation.partition == DAYS[0]


def test_assets_in_run_is_the_runs_selection_or_its_jobs_assets(instance):
    job = DEFS.resolve_job_def("probe_job")
    whole = job.execute_in_process(instance=instance, partition_key=DAYS[0])
    subset = job.execute_in_process(instance=instance, partition_key=DAYS[0],
                                    asset_selection=[dg.AssetKey("probe_child")])

    def seen(run_id: str) -> str:
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("probe_child"), asset_partitions=[DAYS[0]]), limit=5).records
        return next(r for r in record if r.run_id == run_id).asset_materialization.metadata["assets_in_run"].value

    assert seen(whole.run_id) == "probe,probe_child"
    assert seen(subset.run_id) == "probe_child"


def test_backfill_statuses_are_dagsters():
    from dagster._core.execution.backfill import BulkActionStatus

    assert BulkActionStatus(compat.BACKFILL_REQUESTED) == BulkActionStatus.REQUESTED
    assert BulkActionStatus(compat.BACKFILL_COMPLETED_SUCCESS) == BulkActionStatus.COMPLETED_SUCCESS
    assert BulkActionStatus(compat.BACKFILL_COMPLETED_FAILED) == BulkActionStatus.COMPLETED_FAILED


def test_backfill_status_of_an_unknown_backfill_names_it(instance):
    with pytest.raises(KeyError, match="nope"):
        compat.backfill_status(instance, "nope")


def test_instance_values_survive_a_new_instance_object(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert compat.read_instance_value(instance, "bi/test") is None
        compat.write_instance_values(instance, {"bi/test": '{"a": 1}'})
    with dg.instance_for_test(temp_dir=str(tmp_path)) as again:
        assert compat.read_instance_value(again, "bi/test") == '{"a": 1}'


def test_pool_slots_are_listed_and_freed_per_run(instance):
    assert compat.pools_supported(instance)
    assert compat.pool_usage(instance, "gpu") is None  # no such pool yet
    instance.event_log_storage.set_concurrency_slots("gpu", 1)
    assert instance.event_log_storage.claim_concurrency_slot("gpu", "run-a", "step").is_claimed
    usage = compat.pool_usage(instance, "gpu")
    assert usage.slot_count == 1 and usage.holders == ("run-a",)
    assert "run-a" in compat.runs_holding_pool_slots(instance)
    compat.free_pool_slots(instance, "run-a")
    assert compat.pool_usage(instance, "gpu").holders == ()
    assert "run-a" not in compat.runs_holding_pool_slots(instance)


GATED = dg.AssetKey("gated")
GATED_CHECK = dg.AssetCheckKey(GATED, "gated_ok")


@dg.asset(key=GATED, partitions_def=DAILY)
def gated(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult()


@dg.asset(partitions_def=DAILY, deps=[gated])
def after_gate(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult()


with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    GATED_SPEC = dg.AssetCheckSpec(GATED_CHECK.name, asset=GATED, blocking=True, partitions_def=DAILY)


@dg.multi_asset_check(specs=[GATED_SPEC], can_subset=True)
def gated_checks(context: dg.AssetCheckExecutionContext):
    for day in context.partition_keys:
        result = dg.AssetCheckResult(passed=day != DAYS[1], severity=dg.AssetCheckSeverity.ERROR)
        compat.record_check_evaluation(context, compat.check_evaluation(context.instance, GATED_CHECK, result, day,
                                                                        blocking=True))
    yield compat.check_output(context, GATED_CHECK)


def test_a_recorded_failed_blocking_evaluation_leaves_the_step_and_its_downstream_running(instance):
    defs = dg.Definitions(assets=[gated, after_gate], asset_checks=[gated_checks],
                          jobs=[dg.define_asset_job("gated_job", [gated, after_gate])])
    result = defs.resolve_job_def("gated_job").execute_in_process(instance=instance, tags=RANGE_TAGS)
    assert result.success
    assert instance.get_materialized_partitions(dg.AssetKey("after_gate")) == set(DAYS)
    failed = compat.latest_check_evaluation(instance, GATED_CHECK, DAYS[1])
    assert not failed.passed and failed.blocking and failed.severity == dg.AssetCheckSeverity.ERROR
    assert compat.latest_check_evaluation(instance, GATED_CHECK, DAYS[0]).passed
    skipped = [e for e in result.all_events if e.event_type_value == "STEP_SKIPPED"]
    assert not skipped
