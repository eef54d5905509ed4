"""Sensors evaluated with build_sensor_context: run requests and cursors."""

import json
import os
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from batch_inference.automation.sensors import CANARY_TAG, _partition_keys, champion_sensor, landing_sensor
from batch_inference.cli import write_landing_file
from batch_inference.definitions import build_resources
from batch_inference.inference.engine import OUTPUT_SCHEMA
from batch_inference.lake import Lake


def _landing(ctx_cursor, home, instance=None):
    resources = build_resources(home)
    ctx = dg.build_sensor_context(cursor=ctx_cursor, instance=instance,
                                  resources={"lake": resources["lake"], "s3": resources["s3"]})
    return landing_sensor(ctx)


def test_landing_sensor_new_same_changed_and_bad_files(home):
    landing = Path(home.landing_uri)
    write_landing_file("2026-01-05", 100, landing)
    first = _landing(None, home)
    assert [(r.partition_key, r.tags["batch_inference/landing_file"]) for r in first.run_requests] == [
        ("2026-01-05", "transactions_2026-01-05.parquet")]
    key = first.run_requests[0].run_key
    assert key.startswith("transactions_2026-01-05.parquet:")

    again = _landing(first.cursor, home)  # same file, nothing new
    assert again.run_requests == [] and json.loads(again.cursor) == json.loads(first.cursor)

    time.sleep(0.01)
    write_landing_file("2026-01-05", 120, landing)  # a corrected delivery re-scores the day
    changed = _landing(again.cursor, home)
    assert [r.partition_key for r in changed.run_requests] == ["2026-01-05"]
    assert changed.run_requests[0].run_key != key

    # identical content re-delivered (new mtime): hashed again, same digest, nothing requested
    path = landing / "transactions_2026-01-05.parquet"
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    assert _landing(changed.cursor, home).run_requests == []

    (landing / "transactions_2026-13-01.parquet").write_bytes(b"x")
    (landing / "notes.txt").write_text("hello")
    (landing / "transactions_1999-01-01.parquet").write_bytes(b"x")
    bad = _landing(changed.cursor, home)
    assert bad.run_requests == []
    problems = {name: entry["problem"] for name, entry in json.loads(bad.cursor).items() if "problem" in entry}
    assert set(problems) == {"transactions_2026-13-01.parquet", "notes.txt", "transactions_1999-01-01.parquet"}
    assert "outside the partitions" in problems["transactions_1999-01-01.parquet"]


def _write_predictions(home, date, version, rows=10):
    Lake(home.lake_uri).write("predictions", date, pa.table({
        "record_id": [f"{date}-{i}" for i in range(rows)], "score": pa.array([0.5] * rows, pa.float32()),
        "model_name": ["m"] * rows, "model_version": [version] * rows,
        "scored_at": pa.array([None] * rows, pa.timestamp("us", tz="UTC")), "run_id": ["r"] * rows,
    }, schema=OUTPUT_SCHEMA))


def _champion(cursor, home, instance):
    resources = build_resources(home)
    ctx = dg.build_sensor_context(cursor=cursor, instance=instance, resources={
        k: resources[k] for k in ("lake", "model_registry", "automation")})
    return champion_sensor(ctx)


@pytest.fixture
def instance(home):
    with dg.instance_for_test() as inst:
        yield inst


def test_champion_sensor_canary_then_rest(home, registry, trained_small, instance):
    recent = _partition_keys()[-3:]
    v1 = registry.require_champion().version
    for d in recent:
        _write_predictions(home, d, v1)

    unchanged = _champion(None, home, instance)  # first look: everything already scored by v1
    assert not unchanged.run_requests and json.loads(unchanged.cursor)["phase"] == "done"
    assert isinstance(_champion(unchanged.cursor, home, instance), dg.SkipReason)  # alias unchanged

    v2 = registry.register(trained_small).version
    registry.set_champion(v2)
    moved = _champion(unchanged.cursor, home, instance)
    assert [r.partition_key for r in moved.run_requests] == [recent[-1]]  # the canary: most recent day
    assert moved.run_requests[0].tags[CANARY_TAG] == f"v{v2}-{recent[-1]}"
    state = json.loads(moved.cursor)
    assert state == {"version": v2, "phase": "canary", "canary": recent[-1], "rest": recent[:-1]}

    assert isinstance(_champion(moved.cursor, home, instance), dg.SkipReason)  # canary not run yet
    instance.add_run(dg.DagsterRun(job_name="score_day", run_id="canary-run", status=dg.DagsterRunStatus.SUCCESS,
                                   tags={CANARY_TAG: f"v{v2}-{recent[-1]}"}))
    rest = _champion(moved.cursor, home, instance)
    assert sorted(r.partition_key for r in rest.run_requests) == sorted(recent[:-1])
    assert json.loads(rest.cursor)["phase"] == "done"


def test_champion_sensor_halts_when_canary_fails(home, registry, trained_small, instance):
    recent = _partition_keys()[-2:]
    for d in recent:
        _write_predictions(home, d, registry.require_champion().version)
    v2 = registry.register(trained_small).version
    registry.set_champion(v2)
    moved = _champion(json.dumps({"version": "1", "phase": "done"}), home, instance)
    instance.add_run(dg.DagsterRun(job_name="score_day", run_id="bad-canary", status=dg.DagsterRunStatus.FAILURE,
                                   tags={CANARY_TAG: f"v{v2}-{recent[-1]}"}))
    halted = _champion(moved.cursor, home, instance)
    assert not halted.run_requests and json.loads(halted.cursor)["phase"] == "halted"


def test_no_champion_skips(home, instance):
    assert isinstance(_champion(None, home, instance), dg.SkipReason)


@pytest.mark.integration
def test_landing_sensor_on_s3_uses_etags(home, tmp_path, monkeypatch):
    """With the landing area on S3 (moto over HTTP), the sensor lists through dagster-aws's S3Resource."""
    import boto3
    import pyarrow.parquet as pq

    from batch_inference.generator import generate_transactions
    from batch_inference_tests.services import moto_s3

    with moto_s3(tmp_path, "landing-bucket") as aws:
        for key, value in aws.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("BATCH_INFERENCE_LANDING_URI", "s3://landing-bucket/landing")
        from batch_inference.settings import load_settings

        settings = load_settings()
        client = boto3.client("s3")

        def put(date: str, rows: int) -> None:
            path = tmp_path / f"transactions_{date}.parquet"
            pq.write_table(generate_transactions(date, rows), path)
            client.upload_file(str(path), "landing-bucket", f"landing/{path.name}")

        put("2026-01-05", 50)
        client.put_object(Bucket="landing-bucket", Key="landing/readme.txt", Body=b"not data")
        first = _landing(None, settings)
        assert [r.partition_key for r in first.run_requests] == ["2026-01-05"]
        assert first.run_requests[0].run_key.startswith("transactions_2026-01-05.parquet:etag-")
        assert "problem" in json.loads(first.cursor)["readme.txt"]
        assert _landing(first.cursor, settings).run_requests == []
        put("2026-01-05", 60)  # corrected delivery: new content, new ETag
        again = _landing(first.cursor, settings)
        assert [r.partition_key for r in again.run_requests] == ["2026-01-05"]
        assert again.run_requests[0].run_key != first.run_requests[0].run_key
