"""The one home of the Dagster internals the project relies on, behind small functions.

Everything here reaches past Dagster's public API (`dagster._…` imports, storage methods that are
not documented): per-partition check records and the materialization a check evaluation aims at,
backfill status, the instance's key-value store, pool slots, and which assets a run executes.
`batch_inference_tests/test_dagster_compat.py` pins each behaviour against a real instance on
the Dagster version below; a Dagster upgrade starts by running it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dagster as dg

PINNED_DAGSTER_VERSION = "1.13.27"

# Backfill statuses, as `PartitionBackfill.status.value` (dagster._core.execution.backfill.BulkActionStatus).
BACKFILL_REQUESTED = "REQUESTED"
BACKFILL_COMPLETED_SUCCESS = "COMPLETED_SUCCESS"
BACKFILL_COMPLETED_FAILED = "COMPLETED_FAILED"


@dataclass(frozen=True)
class CheckExecution:
    """The latest execution of one asset check (for one partition): planned, or evaluated."""

    run_id: str
    planned_only: bool  # planned by a run that has not (or never) recorded a result
    evaluation: dg.AssetCheckEvaluation | None

    @property
    def target_storage_id(self) -> int | None:
        """Storage id of the materialization the evaluation was aimed at, if any."""
        target = self.evaluation.target_materialization_data if self.evaluation else None
        return target.storage_id if target else None


def _partition_filter(partition: str | None):
    from dagster._core.event_api import PartitionKeyFilter

    return PartitionKeyFilter(key=partition) if partition is not None else None


def _execution(record) -> CheckExecution:
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    evaluation = None
    if record.event is not None and record.event.dagster_event is not None:
        data = record.event.dagster_event.event_specific_data
        evaluation = data if isinstance(data, dg.AssetCheckEvaluation) else None
    planned = record.status == AssetCheckExecutionRecordStatus.PLANNED or evaluation is None
    return CheckExecution(record.run_id, planned, evaluation)


def latest_check_executions(instance: dg.DagsterInstance, keys: Sequence[dg.AssetCheckKey],
                            partition: str | None = None) -> dict[dg.AssetCheckKey, CheckExecution]:
    """The latest execution of each check (of one partition, if given); checks never run are absent."""
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        list(keys), partition_filter=_partition_filter(partition))
    return {key: _execution(record) for key, record in latest.items()}


def latest_check_evaluation(instance: dg.DagsterInstance, key: dg.AssetCheckKey,
                            partition: str | None = None) -> dg.AssetCheckEvaluation | None:
    """The latest recorded evaluation of a check (of one partition, if given), or None."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        key, limit=1, partition_filter=_partition_filter(partition))
    return _execution(records[0]).evaluation if records else None


def check_evaluation(instance: dg.DagsterInstance, key: dg.AssetCheckKey, result: dg.AssetCheckResult,
                     partition: str, *, blocking: bool) -> dg.AssetCheckEvaluation:
    """`result` as an evaluation of one partition, aimed at that partition's latest materialization
    (what Dagster records by itself for a check in a single-partition run)."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )
    from dagster._core.definitions.metadata import normalize_metadata

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key.asset_key, asset_partitions=[partition]), limit=1).records
    target = (AssetCheckEvaluationTargetMaterializationData(storage_id=records[0].storage_id,
                                                            run_id=records[0].run_id,
                                                            timestamp=records[0].timestamp)
              if records else None)
    return dg.AssetCheckEvaluation(asset_key=key.asset_key, check_name=key.name, passed=result.passed,
                                   metadata=normalize_metadata(dict(result.metadata or {})),
                                   severity=result.severity, partition=partition, blocking=blocking,
                                   target_materialization_data=target)


def backfill_status(instance: dg.DagsterInstance, backfill_id: str) -> str:
    """The backfill's status as a string (`BACKFILL_REQUESTED` while the daemon works on it)."""
    backfill = instance.get_backfill(backfill_id)
    if backfill is None:
        raise KeyError(f"no backfill {backfill_id!r} in this instance")
    return backfill.status.value


def read_instance_value(instance: dg.DagsterInstance, key: str) -> str | None:
    """A value of the instance's key-value store (kept across daemon restarts), or None."""
    return instance.run_storage.get_cursor_values({key}).get(key)


def write_instance_values(instance: dg.DagsterInstance, values: Mapping[str, str]) -> None:
    instance.run_storage.set_cursor_values(dict(values))


def pools_supported(instance: dg.DagsterInstance) -> bool:
    """Whether the instance's storage keeps pool (global concurrency) slots."""
    return bool(instance.event_log_storage.supports_global_concurrency_limits)


def runs_holding_pool_slots(instance: dg.DagsterInstance) -> set[str]:
    """Runs that hold, or wait for, a pool slot."""
    return set(instance.event_log_storage.get_concurrency_run_ids()) if pools_supported(instance) else set()


def free_pool_slots(instance: dg.DagsterInstance, run_id: str) -> None:
    """Free every pool slot a run holds or waits for."""
    if pools_supported(instance):
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)


@dataclass(frozen=True)
class PoolUsage:
    slot_count: int | None  # None: the pool has no limit
    holders: tuple[str, ...]  # run ids holding a slot, one per claimed slot


def pool_usage(instance: dg.DagsterInstance, pool: str) -> PoolUsage | None:
    """Slots and holders of a pool, or None where the storage keeps no such pool."""
    storage = instance.event_log_storage
    if not pools_supported(instance) or pool not in storage.get_concurrency_keys():
        return None
    info = storage.get_concurrency_info(pool)
    return PoolUsage(info.slot_count, tuple(s.run_id for s in info.claimed_slots))


def assets_in_run(context: dg.OpExecutionContext) -> set[dg.AssetKey]:
    """Every asset the current run materializes (its selection, else all of its job's assets)."""
    selection = context.run.asset_selection
    if selection:
        return set(selection)
    return set(context.job_def.asset_layer.executable_asset_keys)


def dependents_in_run(context: dg.OpExecutionContext) -> bool:
    """Whether anything else in this run waits for the current step: a child asset of its assets,
    or a check on them (for a check step: a child of the asset it checks)."""
    graph = context.job_def.asset_layer.asset_graph
    in_run = assets_in_run(context)
    checks = context.run.asset_check_selection
    checks_in_run = (set(checks) if checks is not None else set(graph.asset_check_keys)) - set(
        context.selected_asset_check_keys)  # checks this step runs itself wait for nothing
    if context.selected_asset_check_keys and not context.selected_asset_keys:  # a check step
        return any(graph.get(k.asset_key).child_keys & in_run for k in context.selected_asset_check_keys)
    return any(graph.get(key).child_keys & in_run or graph.get(key).check_keys & checks_in_run
               for key in context.selected_asset_keys)


def record_check_evaluation(context: dg.AssetCheckExecutionContext, evaluation: dg.AssetCheckEvaluation) -> None:
    """Record an evaluation as it is (a failed blocking one included) without failing the step: the
    step goes on, and the gate downstream applies it per partition. Yielded instead, a failed
    blocking evaluation makes Dagster fail the step and skip everything downstream."""
    context.op_execution_context.log_event(evaluation)


def check_output(context: dg.AssetCheckExecutionContext, key: dg.AssetCheckKey) -> dg.Output:
    """The check step's declared output for `key`, so steps downstream run (no result is attached)."""
    return dg.Output(None, output_name=context.op_execution_context.job_def.asset_layer.get_op_output_name(key))
