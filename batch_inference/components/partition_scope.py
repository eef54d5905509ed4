"""Which days a step covers, and what happened to each of them.

Every daily step asks `scope_of(context)` once. A run covers one partition (tag
`dagster/partition`: a sensor's, the UI's or a per-partition backfill run) or a range (tags
`dagster/asset_partition_range_start/end`, also when the range is a single day). In a ranged run
each day stands alone: `materialize` runs the step's work day by day, records a materialization
with that day's figures for each day that succeeded, and fails the step at the end naming every
day that failed, its error and runbook. Dagster's asset backfill counts a failed ranged run's
partitions with a materialization as done and the others as failed (see README, "Backfills: each
day stands alone"), so the backfill page shows exactly the failed days.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import dagster as dg

from batch_inference.dagster_compat import (
    assets_in_run,
    check_evaluation,
    check_output,
    dependents_in_run,
    record_check_evaluation,
)
from batch_inference.validation import validate_partition_key

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
FAILED_PARTITIONS = "failed_partitions"  # metadata key of a ranged step's failure: "D1, D2"
# The input asset runs alone in a backfill (a policy unlike its dependents'), so a bad landing file
# fails only its day: the daemon starts the ranged runs downstream for the days that were ingested.
INPUT_BACKFILL_POLICY = dg.BackfillPolicy.single_run()
HISTORY_RUNS = 500  # finished runs looked at for a partition's failures before its publish (M13)
_RUNBOOK = re.compile(r"docs/runbooks/F\d+\.md")


@dataclass(frozen=True)
class PartitionScope:
    """The days one step covers in this run."""

    days: tuple[str, ...]
    single: bool  # a run of one partition: Dagster records plain check results for it by itself
    run_id: str
    live: bool = False  # ranged and nothing else in the run waits for this step: record each day at once

    @property
    def ranged(self) -> bool:
        return not self.single

    @property
    def reuse_committed(self) -> bool:
        """A ranged run (a backfill, or its re-execution) keeps what an interrupted run committed."""
        return self.ranged


def scope_of(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> PartitionScope:
    """The step's days: its partition, or every partition of the run's range (validated dates)."""
    op_context = context.op_execution_context
    run = op_context.run
    single = PARTITION_TAG in run.tags
    days = tuple(validate_partition_key(k) for k in context.partition_keys)
    live = not single and isinstance(context, dg.AssetExecutionContext) and not dependents_in_run(op_context)
    return PartitionScope(days, single, run.run_id, live)


def partitions_of_run(run: dg.DagsterRun) -> list[str]:
    """Every day a run covers, from its tags: its partition, or each day of its range."""
    if run.tags.get(PARTITION_TAG):
        return [run.tags[PARTITION_TAG]]
    start, end = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
    if not start or not end:
        return []
    first, last = dt.date.fromisoformat(validate_partition_key(start)), dt.date.fromisoformat(
        validate_partition_key(end))
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def failed_partitions_of_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    """The days a failed run failed: those its ranged steps named, else every day it covered."""
    named: set[str] = set()
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        data = record.dagster_event.step_failure_data if record.dagster_event else None
        user = data.user_failure_data if data else None
        value = user.metadata.get(FAILED_PARTITIONS) if user else None
        if value is None:
            return partitions_of_run(run)  # a step failed as a whole (or was killed): all its days
        named |= {d.strip() for d in str(getattr(value, "value", value)).split(",") if d.strip()}
    return sorted(named) or partitions_of_run(run)


def partition_history(instance: dg.DagsterInstance, days: Sequence[str],
                      ours: Callable[[dg.DagsterRun], bool]) -> dict[str, list[tuple[float, bool]]]:
    """Per day, (end time, succeeded) of the finished runs of ours that covered it, whatever their
    shape: a ranged run that failed counts as a failure only for the days it named."""
    wanted, history = set(days), defaultdict(list)
    records = instance.get_run_records(dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]), limit=HISTORY_RUNS)
    for record in records:
        run = record.dagster_run
        covered = wanted.intersection(partitions_of_run(run))
        if not covered or not record.end_time or not ours(run):
            continue
        if run.status == dg.DagsterRunStatus.SUCCESS:
            for day in covered:
                history[day].append((record.end_time, True))
        else:
            for day in covered.intersection(failed_partitions_of_run(instance, run)):
                history[day].append((record.end_time, False))
    return dict(history)


@dataclass(frozen=True)
class DayFailure:
    day: str
    error: str
    retryable: bool

    @property
    def runbook(self) -> str:
        found = _RUNBOOK.search(self.error)
        return found.group(0) if found else "docs/runbooks/F1.md"


def _failure(day: str, exc: Exception) -> DayFailure:
    if isinstance(exc, dg.Failure):
        return DayFailure(day, exc.description or str(exc), exc.allow_retries)
    return DayFailure(day, f"{type(exc).__name__}: {exc}", True)


def day_failure(asset_key: dg.AssetKey, failures: list[DayFailure], days: int) -> dg.Failure:
    """The step's failure: each failed day with its error and runbook. Retried only if an error may pass."""
    lines = [f"{f.day}: {f.error}" for f in failures]
    return dg.Failure(
        description=f"{asset_key.to_user_string()}: {len(failures)} of {days} partition(s) failed; the others "
        "are recorded.\n" + "\n".join(lines),
        metadata={FAILED_PARTITIONS: ", ".join(f.day for f in failures),
                  "runbook": ", ".join(sorted({f.runbook for f in failures}))},
        allow_retries=any(f.retryable for f in failures))


DayChecks = Callable[[str], list[tuple[dg.AssetCheckKey, dg.AssetCheckResult]]]


def _named(key: dg.AssetCheckKey, result: dg.AssetCheckResult) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=result.passed,
                               severity=result.severity, metadata=result.metadata)


def _errored(error: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                               metadata={"error": error[:2000]})


def _record_checks(context, checks: DayChecks | None, day: str,
                   keys: list[dg.AssetCheckKey] | None = None) -> list[DayFailure]:
    """Evaluate the day's checks, record each for that day's latest materialization, and return the
    day's failure if a blocking check failed with ERROR (an evaluation that raised counts as failed)."""
    if checks is None:
        return []
    selected = context.selected_asset_check_keys
    try:
        results = [(key, result) for key, result in checks(day) if key in selected]
    except Exception as exc:  # noqa: BLE001 - the day's checks failed to run: recorded as failed for that day
        results = [(key, _errored(f"{type(exc).__name__}: {exc}")) for key in keys or []]
        if not results:
            return [_failure(day, exc)]
    failed = []
    for key, result in results:
        record_check_evaluation(context, check_evaluation(context.instance, key, result, day, blocking=True))
        if not result.passed and result.severity == dg.AssetCheckSeverity.ERROR:
            runbook = (result.metadata or {}).get("runbook")
            runbook = getattr(runbook, "value", runbook)
            failed.append(f"blocking check {key.name} failed" + (f"; runbook {runbook}" if runbook else ""))
    return [DayFailure(day, "; ".join(failed), False)] if failed else []


def _gate_in_run(context, gated_by: dg.AssetKey | None) -> bool:
    return gated_by is not None and gated_by in assets_in_run(context.op_execution_context)


def materialize(context: dg.AssetExecutionContext, scope: PartitionScope, asset_key: dg.AssetKey,
                work: Callable[[str], dict], checks: DayChecks | None = None,
                gated_by: dg.AssetKey | None = None) -> Iterator:
    """Run `work(day)` for each day of the scope and record each day's outcome (yield from it).

    One partition: `work`'s errors fail the step as they are, and `checks` (the asset's own checks)
    are its plain check results. A range: a failed day is logged and the others go on; each day
    that succeeded gets a materialization with its figures and its checks recorded for it, and the
    step fails at the end naming the failed days. A day whose blocking check failed fails the step
    too, unless `gated_by` (the publish, which refuses such days one by one) is in the run. When
    nothing else in the run waits for the step (`scope.live`) each day is recorded as soon as it is
    done, so a run killed half way keeps them.
    """
    done: dict[str, dict] = {}
    failures: list[DayFailure] = []
    refused: list[DayFailure] = []
    for day in scope.days:
        if scope.single:
            done[day] = work(day)
            continue
        try:
            done[day] = work(day)
        except Exception as exc:  # noqa: BLE001 - recorded for the day, raised at the end of the step
            failures.append(_failure(day, exc))
            context.log.error(f"{asset_key.to_user_string()} {day} failed, the range goes on: {failures[-1].error}")
            continue
        if scope.live:
            yield dg.AssetMaterialization(asset_key, partition=day, metadata=done[day])
            refused += _record_checks(context, checks, day)
    if scope.single:
        day = scope.days[0]
        selected = context.selected_asset_check_keys
        results = [_named(key, result) for key, result in checks(day) if key in selected] if checks else []
        yield dg.MaterializeResult(metadata=done[day], check_results=results)
        return
    if not scope.live:
        if failures:
            for day, metadata in done.items():
                yield dg.AssetMaterialization(asset_key, partition=day, metadata=metadata)
        else:
            for day, metadata in done.items():
                context.add_asset_metadata(metadata, partition_key=day)
            yield dg.MaterializeResult()
        for day in done:
            refused += _record_checks(context, checks, day)
    if checks is not None:
        for key in context.selected_asset_check_keys:  # declared outputs: the run's later steps go on
            yield check_output(context, key)
    if failures or (refused and not _gate_in_run(context, gated_by)):
        raise day_failure(asset_key, sorted(failures + refused, key=lambda f: f.day), len(scope.days))


def check_each_day(context: dg.AssetCheckExecutionContext, scope: PartitionScope, checks: DayChecks,
                   gated_by: dg.AssetKey | None = None) -> Iterator:
    """A check step's results (yield from it): plain results for one partition; in a range, each
    day's results recorded for that day, and the step failing at the end naming the days whose
    blocking checks failed, unless `gated_by` (the publish) is in the run to refuse them one by one."""
    keys = list(context.selected_asset_check_keys)
    if scope.single:
        for key, result in checks(scope.days[0]):
            yield _named(key, result)
        return
    refused = [failure for day in scope.days for failure in _record_checks(context, checks, day, keys)]
    for key in keys:
        yield check_output(context, key)
    if refused and not _gate_in_run(context, gated_by):
        raise day_failure(keys[0].asset_key, refused, len(scope.days))
