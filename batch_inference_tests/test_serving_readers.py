"""Readers never block the publish, and never see half a day: a reader keeps a DuckDB connection open
and queries in a loop (plus one long query) while three days are scored and published."""

import threading
import time
from pathlib import Path

import pytest

from batch_inference import serving
from batch_inference.pipelines import write_landing_file
from batch_inference_tests.conftest import job, project_defs

pytestmark = pytest.mark.integration  # end to end through Dagster: the full tier (`make test`)

DAYS = {"2026-04-01": 1_500, "2026-04-02": 2_000, "2026-04-03": 2_500}


def test_a_reader_holding_a_connection_never_blocks_a_publish_or_sees_half_a_day(home, registry,
                                                                               dagster_instance):
    defs = project_defs(home)
    for day, rows in DAYS.items():
        write_landing_file(day, rows, Path(home.landing_uri))
        assert defs.resolve_job_def(job("ingest_day")).execute_in_process(partition_key=day,
                                                                          instance=dagster_instance).success
    # A first day published, so the reader has a view to hold.
    first = next(iter(DAYS))
    assert defs.resolve_job_def(job("score_day")).execute_in_process(partition_key=first,
                                                                     instance=dagster_instance).success
    seen: list[dict[str, int]] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            con = serving.connect(home.lake_uri)
            # A long query that holds the files it opened while the publishes happen.
            con.execute("SELECT count(*) FROM card_fraud.serving_predictions a, range(300000) r").fetchall()
            while not stop.is_set():
                con = serving.connect(home.lake_uri)  # a new reader sees the views as they are now
                rows = con.execute("SELECT CAST(date AS VARCHAR), count(*), count(DISTINCT record_id) "
                                   "FROM card_fraud.serving_predictions GROUP BY 1").fetchall()
                seen.append({d: (n, distinct) for d, n, distinct in rows})
                con.close()
                time.sleep(0.05)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    held = serving.connect(home.lake_uri)  # and one connection held open for the whole time
    held.execute("SELECT count(*) FROM card_fraud.serving_predictions").fetchall()
    try:
        for day in list(DAYS)[1:]:
            result = defs.resolve_job_def(job("score_day")).execute_in_process(
                partition_key=day, instance=dagster_instance)
            assert result.success  # the publish never waits on a reader
    finally:
        stop.set()
        thread.join(timeout=60)
        held.close()
    assert not errors, errors
    assert len(seen) > 3
    for snapshot in seen:
        for day, (n, distinct) in snapshot.items():
            assert n == distinct == DAYS[day], (day, n)  # whole days only, never half or doubled
    final = serving.connect(home.lake_uri)
    counts = dict(final.execute("SELECT CAST(date AS VARCHAR), count(*) FROM card_fraud.serving_predictions "
                                "GROUP BY 1").fetchall())
    final.close()
    assert counts == DAYS
