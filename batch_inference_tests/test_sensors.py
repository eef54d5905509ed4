"""Sensors evaluated with build_sensor_context: run requests and cursors."""

import json
import os
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from batch_inference.components.automation import CANARY_TAG
from batch_inference.definitions import build_resources
from batch_inference.pipelines import write_landing_file
from batch_inference_tests.conftest import (
    PIPELINE,
    artifact_of,
    job,
    key,
    pipeline_lake,
    project_defs,
    promote_by_hand,
)


def _sensor(settings, name: str) -> dg.SensorDefinition:
    return project_defs(settings).resolve_sensor_def(f"{PIPELINE}_{name}")


def _partition_keys(settings) -> list[str]:
    return project_defs(settings).resolve_assets_def(key("predictions")).partitions_def.get_partition_keys()


def _landing(ctx_cursor, home, instance=None):
    resources = build_resources(home)
    ctx = dg.build_sensor_context(cursor=ctx_cursor, instance=instance,
                                  resources={"lake": resources["lake"], "s3": resources["s3"]})
    return _sensor(home, "landing_sensor")(ctx)


def _stamps(cursor: str) -> dict:
    """The landing cursor without the time of each file's last check."""
    return {name: {k: v for k, v in entry.items() if k != "checked_ns"} for name, entry in json.loads(cursor).items()}


def test_landing_sensor_new_same_changed_and_bad_files(home):
    landing = Path(home.landing_uri)
    write_landing_file("2026-01-05", 100, landing)
    first = _landing(None, home)
    assert [(r.partition_key, r.tags["batch_inference/landing_file"]) for r in first.run_requests] == [
        ("2026-01-05", "transactions_2026-01-05.parquet")]
    run_key = first.run_requests[0].run_key
    assert run_key.startswith(f"{PIPELINE}:transactions_2026-01-05.parquet:")

    again = _landing(first.cursor, home)  # same file, nothing new (re-hashed: it changed just before its check)
    assert again.run_requests == [] and _stamps(again.cursor) == _stamps(first.cursor)

    time.sleep(0.01)
    write_landing_file("2026-01-05", 120, landing)  # a corrected delivery re-scores the day
    changed = _landing(again.cursor, home)
    assert [r.partition_key for r in changed.run_requests] == ["2026-01-05"]
    assert changed.run_requests[0].run_key != run_key

    # identical content re-delivered (new mtime): hashed again, same digest, nothing requested
    path = landing / "transactions_2026-01-05.parquet"
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    assert _landing(changed.cursor, home).run_requests == []

    (landing / "transactions_2026-13-01.parquet").write_bytes(b"x")
    (landing / "transactions_1999-01-01.parquet").write_bytes(b"x")
    # the landing area is shared by every pipeline: files of other entities are not this sensor's
    (landing / "notes.txt").write_text("hello")
    (landing / "tickets_2026-01-05.parquet").write_bytes(b"x")
    bad = _landing(changed.cursor, home)
    assert bad.run_requests == []
    cursor = json.loads(bad.cursor)
    problems = {name: entry["problem"] for name, entry in cursor.items() if "problem" in entry}
    assert set(problems) == {"transactions_2026-13-01.parquet", "transactions_1999-01-01.parquet"}
    assert "outside the partitions" in problems["transactions_1999-01-01.parquet"]
    assert "notes.txt" not in cursor and "tickets_2026-01-05.parquet" not in cursor


def _write_predictions(home, date, version, rows=10):
    pipeline_lake(home).write("predictions", date, pa.table({
        # Scores spread over (0, 1): constant scores would make the canary comparison call the day degenerate.
        "record_id": [f"{date}-{i}" for i in range(rows)],
        "score": pa.array([(i + 0.5) / rows for i in range(rows)], pa.float32()),
        "model_name": ["m"] * rows, "model_version": [version] * rows,
        "scored_at": pa.array([None] * rows, pa.timestamp("us", tz="UTC")), "run_id": ["r"] * rows,
    }))


def _champion(cursor, home, instance):
    resources = build_resources(home)
    ctx = dg.build_sensor_context(cursor=cursor, instance=instance, resources={
        k: resources[k] for k in ("lake", "model_registry")})
    return _sensor(home, "champion_sensor")(ctx)


@pytest.fixture
def instance(home):
    with dg.instance_for_test() as inst:
        yield inst


def test_champion_sensor_canary_then_rest(home, registry, trained_small, instance, tmp_path):
    recent = _partition_keys(home)[-3:]
    v1 = registry.require_champion().version
    for d in recent:
        _write_predictions(home, d, v1)

    unchanged = _champion(None, home, instance)  # first look: everything already scored by v1
    assert not unchanged.run_requests and json.loads(unchanged.cursor)["phase"] == "done"
    assert isinstance(_champion(unchanged.cursor, home, instance), dg.SkipReason)  # alias unchanged

    v2 = registry.register(artifact_of(trained_small, tmp_path / "v2")).version
    promote_by_hand(registry, v2)
    moved = _champion(unchanged.cursor, home, instance)
    assert [r.partition_key for r in moved.run_requests] == [recent[-1]]  # the canary: most recent day
    assert moved.run_requests[0].tags[CANARY_TAG] == f"{PIPELINE}-v{v2}-{recent[-1]}"
    state = json.loads(moved.cursor)
    assert state == {"version": v2, "phase": "canary", "canary": recent[-1], "rest": recent[:-1]}

    assert isinstance(_champion(moved.cursor, home, instance), dg.SkipReason)  # canary not run yet
    instance.add_run(dg.DagsterRun(job_name=job("score_day"), run_id="canary-run",
                                   status=dg.DagsterRunStatus.SUCCESS,
                                   tags={CANARY_TAG: f"{PIPELINE}-v{v2}-{recent[-1]}"}))
    rest = _champion(moved.cursor, home, instance)
    assert sorted(r.partition_key for r in rest.run_requests) == sorted(recent[:-1])
    assert json.loads(rest.cursor)["phase"] == "done"


def test_champion_sensor_halts_when_canary_fails(home, registry, trained_small, instance, tmp_path):
    recent = _partition_keys(home)[-2:]
    for d in recent:
        _write_predictions(home, d, registry.require_champion().version)
    v2 = registry.register(artifact_of(trained_small, tmp_path / "v2")).version
    promote_by_hand(registry, v2)
    moved = _champion(json.dumps({"version": "1", "phase": "done"}), home, instance)
    instance.add_run(dg.DagsterRun(job_name=job("score_day"), run_id="bad-canary",
                                   status=dg.DagsterRunStatus.FAILURE,
                                   tags={CANARY_TAG: f"{PIPELINE}-v{v2}-{recent[-1]}"}))
    halted = _champion(moved.cursor, home, instance)
    assert not halted.run_requests and json.loads(halted.cursor)["phase"] == "halted"


def test_no_champion_skips(home, instance):
    assert isinstance(_champion(None, home, instance), dg.SkipReason)


def _sensor_of_yaml(**automation) -> dg.SensorDefinition:
    """The champion sensor of the card-fraud YAML with its `automation:` section overridden."""
    import yaml

    from batch_inference.components import BatchScoring
    from batch_inference.pipelines import discover

    info = discover()[PIPELINE]
    attributes = yaml.safe_load((info.root / "defs.yaml").read_text())["attributes"]
    attributes["automation"] = {**attributes.get("automation", {}), **automation}
    context = dg.ComponentTree.for_test().load_context.for_path(info.root)
    defs = BatchScoring.resolve_from_dict(attributes).build_defs(context)
    return next(s for s in defs.sensors if s.name == f"{PIPELINE}_champion_sensor")


def test_champion_sensor_without_canary_rescores_its_window_at_once(home, registry, trained_small, instance,
                                                                    tmp_path):
    """`automation: {canary: false, rescore_window_days: 2}` in the YAML: no canary, only the window."""
    recent = _partition_keys(home)[-3:]
    for d in recent:
        _write_predictions(home, d, registry.require_champion().version)
    v2 = registry.register(artifact_of(trained_small, tmp_path / "v2")).version
    promote_by_hand(registry, v2)
    resources = build_resources(home)
    sensor = _sensor_of_yaml(canary=False, rescore_window_days=2)
    ctx = dg.build_sensor_context(cursor=json.dumps({"version": "1", "phase": "done"}), instance=instance,
                                  resources={k: resources[k] for k in ("lake", "model_registry")})
    result = sensor(ctx)
    assert sorted(r.partition_key for r in result.run_requests) == recent[-2:]
    assert not any(CANARY_TAG in r.tags for r in result.run_requests)
    assert json.loads(result.cursor) == {"version": v2, "phase": "done", "rescored": recent[-2:]}


@pytest.mark.integration
def test_landing_sensor_on_s3_uses_etags(home, tmp_path, monkeypatch):
    """With the landing area on S3 (moto over HTTP), the sensor lists through dagster-aws's S3Resource."""
    import boto3
    import pyarrow.parquet as pq

    from batch_inference.defs.card_fraud.generator import generate_transactions
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
        assert first.run_requests[0].run_key.startswith(f"{PIPELINE}:transactions_2026-01-05.parquet:etag-")
        assert "readme.txt" not in json.loads(first.cursor)  # not a `transactions_` file: not this sensor's
        assert _landing(first.cursor, settings).run_requests == []
        put("2026-01-05", 60)  # corrected delivery: new content, new ETag
        again = _landing(first.cursor, settings)
        assert [r.partition_key for r in again.run_requests] == ["2026-01-05"]
        assert again.run_requests[0].run_key != first.run_requests[0].run_key
