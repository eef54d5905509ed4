"""The text-embedding pipeline (support_tickets) end to end: the same platform guarantees as the
tabular one — four checks per partition, quarantine, drift that blocks the publish, the landing and
champion sensors, ranged backfills, and resume after SIGKILL with bit-identical embeddings."""

import datetime as dt
import json
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest

from batch_inference import serving
from batch_inference.components.automation import CANARY_TAG
from batch_inference.definitions import build_resources
from batch_inference.lake import Lake
from batch_inference.pipelines import write_landing_file
from batch_inference_tests.checks_helpers import latest_check
from batch_inference_tests.conftest import project_defs, subprocess_env

pytestmark = pytest.mark.integration  # end to end through Dagster: the full tier (`make test`)

PIPELINE = "support_tickets"
WEEK = [f"2026-03-{d:02d}" for d in range(2, 9)]
ROWS = 120
CHECKS = ("embeddings_schema", "embeddings_completeness", "embeddings_drift", "embeddings_model_version")


def key(asset: str) -> dg.AssetKey:
    return dg.AssetKey([PIPELINE, asset])


def job(name: str) -> str:
    return f"{PIPELINE}_{name}"


def lake(home) -> Lake:
    return Lake(f"{home.lake_uri}/{PIPELINE}")


def _range(days: list[str]) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}


@pytest.fixture
def scored_week(home, dagster_instance):
    """A clean week (with a few null texts and duplicate ids), ingested and scored as ranged runs."""
    landing = Path(home.landing_uri)
    for day in WEEK:
        write_landing_file(day, ROWS, landing, pipeline=PIPELINE, corrupt_rate=0.03)
    defs = project_defs(home)
    assert defs.resolve_job_def(job("ingest_day")).execute_in_process(instance=dagster_instance,
                                                                      tags=_range(WEEK)).success
    assert defs.resolve_job_def(job("train_model")).execute_in_process(instance=dagster_instance).success
    result = defs.resolve_job_def(job("score_day")).execute_in_process(instance=dagster_instance, tags=_range(WEEK))
    assert result.success
    return defs


def test_a_clean_week_passes_every_check_per_partition_with_no_warn(home, scored_week, dagster_instance):
    store = lake(home)
    for day in WEEK:
        for name in CHECKS:
            evaluation = latest_check(dagster_instance, key("embeddings"), name, partition=day)
            assert evaluation is not None and evaluation.passed, (day, name)  # drift: ok, not even a WARN
        embeddings = store.read("embeddings", day)
        vectors = np.stack(embeddings.column("embedding").to_numpy(zero_copy_only=False))
        assert vectors.shape[1] == 384 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        quarantined = store.read("quarantine", day, part="part-tickets.parquet")
        landing = pq.read_table(Path(home.landing_uri) / f"tickets_{day}.parquet")
        assert embeddings.num_rows + quarantined.num_rows == landing.num_rows == ROWS
        assert quarantined.num_rows > 0
        reasons = set(quarantined.column("reason").to_pylist())
        assert any(r.startswith("text:") for r in reasons) or any("duplicate ticket_id" in r for r in reasons)
        assert store.read("serving_embeddings", day).num_rows == embeddings.num_rows
    meta = dagster_instance.get_latest_materialization_event(key("embeddings")).asset_materialization.metadata
    assert "truncated_rows" in meta and meta["model_name"].value == "ticket_embedder"


def test_nearest_neighbours_over_the_published_embeddings(home, scored_week):
    """The README's query: DuckDB's array_cosine_similarity over the serving view."""
    con = serving.connect(home.lake_uri)
    try:
        query = """
            WITH q AS (SELECT embedding::FLOAT[384] AS v FROM support_tickets.serving_embeddings WHERE record_id = ?)
            SELECT s.record_id, array_cosine_similarity(s.embedding::FLOAT[384], q.v) AS similarity
            FROM support_tickets.serving_embeddings s, q
            ORDER BY similarity DESC LIMIT 5"""
        first = con.execute("SELECT record_id FROM support_tickets.serving_embeddings LIMIT 1").fetchall()[0][0]
        rows = con.execute(query, [first]).fetchall()
    finally:
        con.close()
    # The query itself comes first (tickets with the very same text tie with it at 1.0).
    assert rows[0][1] == pytest.approx(1.0, abs=1e-5)
    assert first in {r for r, s in rows if s == pytest.approx(1.0, abs=1e-5)}
    assert len(rows) == 5 and all(-1.0 <= s <= 1.0001 for _, s in rows)
    assert [s for _, s in rows] == sorted((s for _, s in rows), reverse=True)


def test_a_drifted_day_is_blocked_from_publishing(home, scored_week, dagster_instance):
    day = "2026-03-09"
    write_landing_file(day, 300, Path(home.landing_uri), pipeline=PIPELINE, drift=1.0)
    defs = scored_week
    assert defs.resolve_job_def(job("ingest_day")).execute_in_process(partition_key=day,
                                                                      instance=dagster_instance).success
    scored = defs.resolve_job_def(job("score_day")).execute_in_process(partition_key=day, instance=dagster_instance,
                                                                       raise_on_error=False)
    drift = next(e for e in scored.get_asset_check_evaluations() if e.check_name == "embeddings_drift")
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.ERROR
    assert not lake(home).exists("serving_embeddings", day)
    publish = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=day, instance=dagster_instance, asset_selection=[key("serving_embeddings")],
        raise_on_error=False)
    assert not publish.success and not lake(home).exists("serving_embeddings", day)


def test_landing_and_champion_sensors_with_a_canary(home, scored_week, dagster_instance, tmp_path):
    resources = build_resources(home)
    landing_sensor = scored_week.resolve_sensor_def(job("landing_sensor"))
    ctx = dg.build_sensor_context(instance=dagster_instance, resources={"lake": resources["lake"],
                                                                        "s3": resources["s3"]})
    requests = landing_sensor(ctx).run_requests
    assert sorted(r.partition_key for r in requests) == WEEK  # its own files, none of another pipeline's
    assert all(r.tags["batch_inference/landing_file"].startswith("tickets_") for r in requests)

    # The alias names v1 while the two most recent days of the window were scored by an older
    # version: the most recent is re-scored first, as a canary, the other only after it succeeds.
    import pyarrow as pa

    champion = scored_week.resolve_sensor_def(job("champion_sensor"))
    partitions = scored_week.resolve_assets_def(key("embeddings")).partitions_def
    recent = partitions.get_partition_keys()[-2:]
    store = lake(home)
    older = store.read("embeddings", WEEK[-1])
    older = older.set_column(older.schema.get_field_index("model_version"), "model_version",
                             pa.array(["0"] * older.num_rows, pa.string()))
    for day in recent:
        store.write("embeddings", day, older)
    ctx = dg.build_sensor_context(instance=dagster_instance, cursor=json.dumps({"version": "0", "phase": "done"}),
                                  resources={"lake": resources["lake"], "model_registry": resources["model_registry"]})
    result = champion(ctx)
    assert [r.partition_key for r in result.run_requests] == [recent[-1]]
    assert CANARY_TAG in result.run_requests[0].tags


@pytest.mark.integration
def test_sigkill_mid_partition_then_resume_gives_bit_identical_embeddings(home, dagster_instance):
    day = "2026-03-10"
    write_landing_file(day, 1_100, Path(home.landing_uri), pipeline=PIPELINE)  # 3 chunks of 512 tickets
    defs = project_defs(home)
    for name in ("ingest_day",):
        assert defs.resolve_job_def(job(name)).execute_in_process(partition_key=day, instance=dagster_instance).success
    assert defs.resolve_job_def(job("train_model")).execute_in_process(instance=dagster_instance).success
    assert defs.resolve_job_def(job("score_day")).execute_in_process(partition_key=day,
                                                                     instance=dagster_instance).success
    reference = lake(home).read("embeddings", day).select(["record_id", "embedding"])

    env = subprocess_env(home) | {"BATCH_INFERENCE_CRASH_AT": "after-chunk-0"}
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "batch_inference.definitions",
               "--select", f"{PIPELINE}/embeddings", "--partition", day]
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:] + killed.stderr[-2000:]
    resumed = subprocess.run(command, env=subprocess_env(home), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    records = dagster_instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key("embeddings"), asset_partitions=[day]), limit=1).records
    assert records[0].asset_materialization.metadata["resumed_rows"].value == 512
    assert lake(home).read("embeddings", day).select(["record_id", "embedding"]).equals(reference)
    assert dt.date.fromisoformat(day)  # the partition key stayed a date
