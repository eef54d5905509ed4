"""Every SLI (M1-M14) can be read: each SQL query runs over the views of a scored day and gives a
sensible figure, each metric is one the runs push, and the README's table lists all fourteen."""

from pathlib import Path

import dagster as dg

from batch_inference import serving
from batch_inference.observability import metric_names
from batch_inference.slis import SLIS
from batch_inference_tests.conftest import job, project_defs

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_sli_reads_from_sql_metrics_or_run_records(home, landed, registry, dagster_instance):
    defs = project_defs(home)
    for day in landed:
        for name in ("ingest_day", "score_day"):
            assert defs.resolve_job_def(job(name)).execute_in_process(partition_key=day,
                                                                      instance=dagster_instance).success
    assert [s.code for s in SLIS] == [f"M{i}" for i in range(1, 15)]
    con = serving.connect(home.lake_uri)
    try:
        results = {s.code: con.execute(s.query("card_fraud")).fetchall() for s in SLIS if s.sql}
    finally:
        con.close()
    assert all(len(rows) == len(landed) for rows in results.values()), results
    assert all(seconds > 0 for _, seconds in results["M2"])
    assert all(rate > 0 for _, rate in results["M3"])
    assert all(complete for *_, complete in results["M5"])
    assert all(versions == 1 for _, versions, _ in results["M6"])
    assert all(0 <= rate < 0.01 for _, rate in results["M8"])
    assert all(share == 1.0 for _, share in results["M14"])
    pushed = set(metric_names())
    for sli in SLIS:
        assert sli.sql or sli.metric or sli.dagster, sli.code
        if sli.metric:
            assert sli.metric in pushed, (sli.code, sli.metric)
    runs = dagster_instance.get_runs(filters=dg.RunsFilter(tags={"batch_inference/pipeline": "card_fraud"}))
    assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)  # M1 from run records
    retries = [e for r in runs for e in dagster_instance.all_logs(r.run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY)]
    assert retries == []  # M11 from run records


def test_the_readme_sli_table_has_all_fourteen():
    text = README.read_text()
    for sli in SLIS:
        row = next((line for line in text.splitlines() if line.startswith(f"| {sli.code} |")), None)
        assert row is not None, sli.code
        assert (sli.metric and sli.metric in row) or (sli.sql and "ledger" in row or "serving_predictions" in row) \
            or sli.dagster, (sli.code, row)
