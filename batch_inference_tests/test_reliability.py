"""Fault injection with real processes: SIGKILL mid-partition and mid-commit, resume, concurrency,
and readers that never block a publish."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from batch_inference import serving
from batch_inference.pipelines import write_landing_file
from batch_inference_tests.conftest import job, key, pipeline_lake, project_defs, subprocess_env
from batch_inference_tests.invariants import assert_day_scored_once

BIN = Path(sys.executable).parent
DAY = "2026-03-14"
ROWS = 400_000
# 400k rows a day drift from the small model's 5k-row reference (per-customer counts scale with
# volume); drift is not under test here, so its alert threshold is lifted for these runs.
NO_DRIFT_GATE = {"resources": {"quality": {"config": {"psi_alert": 1e9, "ks_alert": 1.0, "psi_warn": 1e9,
                                                      "ks_warn": 1.0}}}}
CHUNKED = json.dumps({**NO_DRIFT_GATE, "ops": {"card_fraud__predictions": {"config": {"checkpoint_rows": 65_536}}}})
DAILY = ",".join(f"card_fraud/{a}" for a in ("transactions", "features", "predictions", "serving_predictions"))
pytestmark = pytest.mark.integration


def _materialize(env, select="card_fraud/predictions", day=DAY, config=CHUNKED) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "batch_inference.definitions", "--select", select,
         "--partition", day, "--config-json", config],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture
def big_day(home, registry, dagster_instance):
    write_landing_file(DAY, ROWS, Path(home.landing_uri))
    result = project_defs(home).resolve_job_def(job("ingest_day")).execute_in_process(
        partition_key=DAY, instance=dagster_instance)
    assert result.success
    return DAY


def _latest_predictions_metadata(instance) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key("predictions"), asset_partitions=[DAY]), limit=1).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def test_sigkill_mid_partition_then_resume_gives_identical_result(home, registry, big_day, dagster_instance):
    env = subprocess_env(home)
    lake = pipeline_lake(home)
    _finish(_materialize(env))  # an uninterrupted run: the reference
    reference = lake.read("predictions", DAY)
    assert _latest_predictions_metadata(dagster_instance)["resumed_rows"] == 0

    proc = _materialize(env)  # killed once a few chunks are committed
    staging = Path(lake.staging_dir("predictions", DAY))
    deadline = time.monotonic() + 180
    while len(list(staging.glob("*/chunk-*.parquet"))) < 3:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _mark_killed_runs_failed(dagster_instance)
    committed = len(list(staging.glob("*/chunk-*.parquet")))
    assert lake.read("predictions", DAY).equals(reference)  # readers still see the previous version, whole

    _finish(_materialize(env))
    resumed = lake.read("predictions", DAY)
    assert resumed.select(["record_id", "score"]).equals(reference.select(["record_id", "score"]))  # bit-identical
    meta = _latest_predictions_metadata(dagster_instance)
    assert meta["resumed_rows"] >= committed * 65_536 > 0
    assert meta["rows"] == ROWS
    assert not staging.exists()  # checkpoints are removed once the partition is committed
    assert_day_scored_once(home, DAY, registry.require_champion().version)


def _mark_killed_runs_failed(instance) -> None:
    """What an operator does for a dead run (`batch-inference release-slots`): fail it, free its slots.

    A SIGKILLed process never reports its run's end; its run stays STARTED (and, with op-granular
    pools, would keep the `gpu` slot its step held) until this marks it failed.
    """
    from batch_inference.slots import release_dead_run_slots

    started = [r.run_id for r in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))]
    freed = release_dead_run_slots(instance, local=True)
    assert set(started) <= set(freed), (started, freed)
    assert not instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))


def test_sigkill_during_commit_leaves_previous_partition(home, registry, big_day, dagster_instance):
    env = subprocess_env(home)
    lake = pipeline_lake(home)
    _finish(_materialize(env))
    reference = lake.read("predictions", DAY)

    crashed = _materialize({**env, "BATCH_INFERENCE_CRASH_AT": "commit"})
    crashed.communicate(timeout=300)
    assert crashed.returncode != 0
    _mark_killed_runs_failed(dagster_instance)
    assert lake.read("predictions", DAY).equals(reference)
    visible = [p.name for p in Path(lake.partition_dir("predictions", DAY)).iterdir() if p.suffix == ".parquet"]
    assert visible == ["part-0.parquet"]  # a half-written file is never under a name readers glob

    _finish(_materialize(env))
    assert lake.read("predictions", DAY).select(["record_id", "score"]).equals(
        reference.select(["record_id", "score"]))


def test_two_partitions_concurrently_in_two_processes(home, registry, dagster_instance):
    # The instance's sqlite storages exist before the two processes start (as under `dagster dev`):
    # two fresh processes creating them at once race in Dagster's own schema migration.
    dagster_instance.get_runs(limit=1)
    dagster_instance.fetch_materializations(dg.AssetKey("warm_up"), limit=1)
    dagster_instance.all_instigator_state()
    days = ["2026-03-15", "2026-03-16"]
    for day in days:
        write_landing_file(day, 20_000, Path(home.landing_uri))
    env = subprocess_env(home)
    procs = [_materialize(env, select=DAILY, day=day, config=json.dumps(NO_DRIFT_GATE)) for day in days]
    for proc in procs:
        _finish(proc)
    version = registry.require_champion().version
    for day in days:
        assert_day_scored_once(home, day, version)
    con = serving.connect(home.lake_uri)
    try:
        counts = dict(con.execute(
            "SELECT CAST(date AS VARCHAR), count(*) FROM card_fraud.serving_predictions GROUP BY 1").fetchall())
        ledger = con.execute(
            "SELECT partition, rows_scored, model_version FROM card_fraud.ledger ORDER BY 1").fetchall()
    finally:
        con.close()
    assert counts == {d: 20_000 for d in days}
    assert ledger == [(d, 20_000, version) for d in days]
    assert "card_fraud.serving_predictions" in home.warehouse_sql.read_text()  # the views script, rewritten


_READER = """
import sys
from batch_inference import serving
con = serving.connect(sys.argv[1])
con.execute("SET enable_progress_bar = false")  # keep stdout to the two lines below
cursor = con.execute("SELECT record_id, score FROM card_fraud.serving_predictions WHERE date = ?", [sys.argv[2]])
first = cursor.fetchmany(1000)
print("reading", flush=True)
sys.stdin.readline()  # hold the connection and the half-read result while the publish runs
rows = len(first) + sum(len(b) for b in iter(lambda: cursor.fetchmany(10000), []))
print(rows, flush=True)
con.close()
"""


def test_readers_never_block_a_publish(home, registry):
    """A reader holding a connection and a half-read result open (where the old DuckDB file's
    writer lock made the publish wait) does not delay a re-publish of the same day; it finishes
    reading a whole day, and a new connection sees the new version."""
    day = "2026-03-17"
    write_landing_file(day, 20_000, Path(home.landing_uri))
    env = subprocess_env(home)
    _finish(_materialize(env, select=DAILY, day=day, config=json.dumps(NO_DRIFT_GATE)))
    lake = pipeline_lake(home)
    first_run = lake.read("serving_predictions", day).column("run_id")[0].as_py()

    reader = subprocess.Popen([sys.executable, "-c", _READER, home.lake_uri, day], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "reading"
        _finish(_materialize(env, select="card_fraud/predictions,card_fraud/serving_predictions", day=day,
                             config=json.dumps(NO_DRIFT_GATE)), timeout=180)
        assert reader.poll() is None  # the reader is still there, mid-result
        reader.stdin.write("\n")
        reader.stdin.flush()
        out, _ = reader.communicate(timeout=60)
        assert reader.returncode == 0
        assert int(out.split()[-1]) == 20_000  # a whole day, never a torn one
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    published = lake.read("serving_predictions", day)
    assert published.column("run_id")[0].as_py() != first_run  # really re-published
    con = serving.connect(home.lake_uri)
    try:
        (runs,) = con.execute("SELECT list(DISTINCT run_id) FROM card_fraud.serving_predictions WHERE date = ?",
                              [day]).fetchone()
    finally:
        con.close()
    assert runs == [published.column("run_id")[0].as_py()]
