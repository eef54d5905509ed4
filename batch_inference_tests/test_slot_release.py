"""A SIGKILLed run must not leave the next run of the day hanging on its pool slot.

Real processes: `dagster asset materialize` of a tiny pooled asset (slot_probe_defs), killed
mid-step with SIGKILL, then a rerun, over a DAGSTER_HOME that uses the project's dagster.yaml.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from batch_inference.slots import (
    RELEASE_COMMAND,
    RunProcess,
    blocked_pool_message,
    process_alive,
    release_dead_run_slots,
    runs_execute_locally,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).parent / "dagster"
BOUND_S = 60.0


def _home(tmp_path: Path, granularity: str | None = None) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    if granularity:
        text = (home / "dagster.yaml").read_text()
        (home / "dagster.yaml").write_text(text.replace("granularity: run", f"granularity: {granularity}"))
    return home


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


def _materialize(home: Path, log: Path, marker: Path | None = None, sleep: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": str(home), "SLOT_PROBE_SLEEP": str(sleep),
           "SLOT_PROBE_MARKER": str(marker or "")}
    return subprocess.Popen(
        [str(DAGSTER), "asset", "materialize", "-m", "batch_inference_tests.slot_probe_defs",
         "--select", "slot_probe"],
        cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def _cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _killed_mid_step(home: Path, tmp_path: Path) -> str:
    """Start a run, SIGKILL its whole process group while the pooled step runs; its run id."""
    marker = tmp_path / "started"
    first = _materialize(home, tmp_path / "first.log", marker, sleep=120)
    try:
        _wait_for(marker.exists, BOUND_S, "the pooled step to start")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    with _instance(home) as instance:
        (record,) = instance.get_run_records()
        assert record.dagster_run.status == dg.DagsterRunStatus.STARTED  # nobody noticed the kill
        return record.dagster_run.run_id


def test_rerun_after_sigkill_proceeds_with_project_config(tmp_path: Path) -> None:
    home = _home(tmp_path)
    dead_run = _killed_mid_step(home, tmp_path)

    started = time.monotonic()
    rerun = _materialize(home, tmp_path / "rerun.log")
    rc = rerun.wait(timeout=BOUND_S)
    log = (tmp_path / "rerun.log").read_text()
    assert rc == 0, log
    assert time.monotonic() - started < BOUND_S
    assert "blocked by limit" not in log

    with _instance(home) as instance:
        assert runs_execute_locally(instance)
        assert release_dead_run_slots(instance) == [dead_run]
        assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.FAILURE
        assert release_dead_run_slots(instance) == []  # idempotent; the rerun is finished and clean


def test_release_unblocks_a_waiting_op_granularity_run(tmp_path: Path) -> None:
    """With `granularity: op` the rerun waits on the dead run's slot until it is released."""
    home = _home(tmp_path, granularity="op")
    dead_run = _killed_mid_step(home, tmp_path)
    waiter = _materialize(home, tmp_path / "waiter.log")
    try:
        _wait_for(lambda: "blocked by limit for pool gpu" in (tmp_path / "waiter.log").read_text(),
                  BOUND_S, "the rerun to block on the pool")
        with _instance(home) as instance:
            message = blocked_pool_message(instance, "gpu")
            assert message is not None and dead_run in message and RELEASE_COMMAND in message
            assert release_dead_run_slots(instance) == [dead_run]
            assert instance.get_run_by_id(dead_run).status == dg.DagsterRunStatus.FAILURE
        assert waiter.wait(timeout=BOUND_S) == 0, (tmp_path / "waiter.log").read_text()
    finally:
        if waiter.poll() is None:
            os.killpg(waiter.pid, signal.SIGKILL)
            waiter.wait()


@pytest.mark.xfail(strict=True, reason=(
    "dagster 1.13: InstanceConcurrencyContext.interval_to_next_pending_claim_check returns "
    "min(0, ...) so an in-process op-level pool wait never sleeps, and the in-process executor "
    "defers SIGTERM until the step ends. This is why dagster.yaml uses `granularity: run`; "
    "if this starts passing, op granularity is safe again."))
def test_op_granularity_wait_is_idle_and_stops_on_sigterm(tmp_path: Path) -> None:
    home = _home(tmp_path, granularity="op")
    with _instance(home) as instance:
        instance.event_log_storage.initialize_concurrency_limit_to_default("gpu")
        assert instance.event_log_storage.claim_concurrency_slot("gpu", "holder", "step").is_claimed
    waiter = _materialize(home, tmp_path / "waiter.log")
    try:
        _wait_for(lambda: "blocked by limit" in (tmp_path / "waiter.log").read_text(), BOUND_S,
                  "the run to block on the pool")
        before, t0 = _cpu_seconds(waiter.pid), time.monotonic()
        time.sleep(2.0)
        cpu_share = (_cpu_seconds(waiter.pid) - before) / (time.monotonic() - t0)
        waiter.send_signal(signal.SIGTERM)
        try:
            waiter.wait(timeout=5)
            stopped = True
        except subprocess.TimeoutExpired:
            stopped = False
        assert cpu_share < 0.2 and stopped, f"cpu share {cpu_share:.2f}, stopped on SIGTERM: {stopped}"
    finally:
        if waiter.poll() is None:
            os.killpg(waiter.pid, signal.SIGKILL)
            waiter.wait()


def test_process_alive() -> None:
    now = time.time()
    assert process_alive(RunProcess(os.getpid(), now))
    # Our own pid recorded long before this process started: a reused pid, not the run's process.
    assert not process_alive(RunProcess(os.getpid(), now - 10 * 365 * 86_400))
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    _wait_for(lambda: Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] == "Z", 30,
              "the child to exit")
    assert not process_alive(RunProcess(child.pid, now))  # a zombie is dead
    child.wait()
    assert not process_alive(RunProcess(child.pid, now))  # gone


def test_release_ignores_runs_it_cannot_judge(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with _instance(home) as instance:
        assert release_dead_run_slots(instance, local=False) == []
        # A started run that recorded no process yet (still starting) is left alone.
        instance.add_run(dg.DagsterRun(job_name="j", run_id="no-process-yet",
                                       status=dg.DagsterRunStatus.STARTED))
        assert release_dead_run_slots(instance) == []
        assert instance.get_run_by_id("no-process-yet").status == dg.DagsterRunStatus.STARTED
