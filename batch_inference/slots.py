"""Free the pool slots of runs whose process died (SIGKILL, OOM kill, power loss).

A run that is killed hard never reaches the code that releases its `gpu` / `duckdb` pool slot,
and its status stays STARTED. With the local `DefaultRunLauncher` nothing notices: run monitoring
only checks worker health for launchers that support it (Kubernetes), and the daemon frees the
slots of *finished* runs only. This module finds such runs on this machine from the process ids
their events recorded, marks them failed and frees their slots, so the next run of the day can
proceed. Command that does it by hand: `batch-inference release-slots`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from batch_inference.dagster_compat import (
    free_pool_slots,
    pool_usage,
    pools_supported,
    runs_holding_pool_slots,
)

RELEASE_COMMAND = "batch-inference release-slots"
# Runs whose process could still be running somewhere; finished runs only need their slots freed.
_LIVE_STATUSES = (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)
_FINISHED_STATUSES = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
                      dg.DagsterRunStatus.CANCELED)
# Events whose `pid` is a process doing the run's work (the run worker, step workers).
_PID_EVENTS = {dg.DagsterEventType.RUN_START, dg.DagsterEventType.STEP_WORKER_STARTED,
               dg.DagsterEventType.STEP_START, dg.DagsterEventType.RESOURCE_INIT_STARTED}
# /proc start times have 1/100 s resolution and `btime` whole seconds: allow that much slack.
_START_SLACK_S = 2.0


@dataclass(frozen=True)
class RunProcess:
    """A process id recorded by one of a run's events, and when it was recorded."""

    pid: int
    recorded_at: float


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def process_alive(process: RunProcess) -> bool:
    """Whether the recorded process still exists, is not a zombie and is not a reused pid."""
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{process.pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): existence is all we know
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
    state, start_ticks = fields[0], int(fields[19])
    if state in ("Z", "X"):
        return False
    boot = _boot_time()
    if boot is None:
        return True
    started = boot + start_ticks / os.sysconf("SC_CLK_TCK")
    # A process that started after the event naming its pid is another process reusing the pid.
    return started <= process.recorded_at + _START_SLACK_S


def run_processes(instance: dg.DagsterInstance, run_id: str) -> list[RunProcess]:
    """The processes a run's events say worked on it (run worker, step workers)."""
    records = instance.get_records_for_run(run_id, of_type=_PID_EVENTS, limit=1000).records
    seen: dict[int, RunProcess] = {}
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is not None and event.pid is not None and event.pid not in seen:
            seen[event.pid] = RunProcess(event.pid, record.event_log_entry.timestamp)
    return list(seen.values())


def runs_execute_locally(instance: dg.DagsterInstance) -> bool:
    """True when runs of this instance are processes on this machine (pids are meaningful).

    The default run launcher with sqlite storage (a DAGSTER_HOME on local disk): the `make dev`,
    `make demo` and CLI setup. On Kubernetes, run monitoring checks the run pods instead.
    """
    storage = type(instance.run_storage).__name__
    return isinstance(instance.run_launcher, dg.DefaultRunLauncher) and (
        storage.startswith("Sqlite") or storage.startswith("InMemory"))


def _candidate_run_ids(instance: dg.DagsterInstance) -> set[str]:
    run_ids = runs_holding_pool_slots(instance)
    records = instance.get_run_records(dg.RunsFilter(statuses=list(_LIVE_STATUSES)), limit=1000)
    run_ids |= {r.dagster_run.run_id for r in records}
    return run_ids


def release_dead_run_slots(instance: dg.DagsterInstance, *, local: bool | None = None,
                           exclude: Iterable[str] = ()) -> list[str]:
    """Mark runs whose processes are all dead as failed and free their pool slots.

    Considers runs that hold or wait for a pool slot and runs still STARTED/CANCELING. A run is
    dead when every process its events recorded is gone (a pid reused by a newer process counts
    as gone); a run with no recorded process (still starting) is left alone. Finished runs that
    still hold slots only get their slots freed. `local=None` decides from the instance
    (`runs_execute_locally`); on a non-local instance nothing is done. Returns the run ids freed.
    """
    if local is None:
        local = runs_execute_locally(instance)
    if not local:
        return []
    skip = set(exclude)
    freed: list[str] = []
    slots = pools_supported(instance)
    for run_id in sorted(_candidate_run_ids(instance) - skip):
        run = instance.get_run_by_id(run_id)
        if run is None:
            if slots:  # a deleted run cannot be running
                free_pool_slots(instance, run_id)
                freed.append(run_id)
            continue
        if run.status in _LIVE_STATUSES:
            processes = run_processes(instance, run_id)
            if not processes or any(process_alive(p) for p in processes):
                continue
            pids = ", ".join(str(p.pid) for p in processes)
            instance.report_run_failed(
                run, f"Run process(es) {pids} no longer exist (killed hard); marked failed and its "
                     f"pool slots freed by release_dead_run_slots.")
        elif run.status not in _FINISHED_STATUSES:
            continue  # queued / starting: not ours to judge
        if slots:
            free_pool_slots(instance, run_id)
        freed.append(run_id)
    return freed


def blocked_pool_message(instance: dg.DagsterInstance, pool: str) -> str | None:
    """Describe who holds every slot of `pool`, with the command that frees dead holders."""
    usage = pool_usage(instance, pool)
    if usage is None or usage.slot_count is None or len(usage.holders) < usage.slot_count:
        return None
    holders = ", ".join(sorted(set(usage.holders)))
    return (f"pool {pool!r} has all {usage.slot_count} slot(s) held by run(s) {holders}; if a run "
            f"was killed, `{RELEASE_COMMAND}` marks it failed and frees its slots")
