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
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import dagster as dg

from batch_inference.dagster_compat import dependents_in_run
from batch_inference.validation import validate_partition_key

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
FAILED_PARTITIONS = "failed_partitions"  # metadata key of a ranged step's failure: "D1, D2"
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


def materialize(context: dg.AssetExecutionContext, scope: PartitionScope, asset_key: dg.AssetKey,
                work: Callable[[str], dict]) -> Iterator:
    """Run `work(day)` for each day of the scope and record each day's outcome (yield from it).

    One partition: `work`'s errors fail the step as they are. A range: a failed day is logged and
    the others go on; each day that succeeded gets a materialization with its figures, and the
    step fails at the end naming the failed days. When nothing else in the run waits for the step
    (`scope.live`) each day is recorded as soon as it is done, so a run killed half way keeps them.
    """
    done: dict[str, dict] = {}
    failures: list[DayFailure] = []
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
    if failures:
        if not scope.live:
            for day, metadata in done.items():
                yield dg.AssetMaterialization(asset_key, partition=day, metadata=metadata)
        raise day_failure(asset_key, failures, len(scope.days))
    if scope.live:
        return
    if scope.single:
        yield dg.MaterializeResult(metadata=done[scope.days[0]])
        return
    for day, metadata in done.items():
        context.add_asset_metadata(metadata, partition_key=day)
    yield dg.MaterializeResult()


