"""`make demo`: a week of data for every pipeline through Dagster on the embedded default.

For each pipeline of the defs folder: generates landing files for the most recent complete days
(or, for an upstream-fed pipeline, materializes its upstream asset for each day), materializes the
input and features of each day, builds and registers the model, scores and
publishes every day, and prints a summary that tells a drift WARN from a failed check. Runs are
recorded in DAGSTER_HOME, so `make dev` shows the same history. A pipeline that fails is reported
and the others still run; the exit status is then 1.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

from batch_inference.components.pipeline import Pipeline
from batch_inference.pipelines import discover, write_landing_file
from batch_inference.settings import Settings, load_settings


def demo_days(count: int, today: dt.date | None = None) -> list[str]:
    """The `count` most recent complete days (UTC), oldest first."""
    today = today or dt.datetime.now(dt.UTC).date()
    return [(today - dt.timedelta(days=i)).isoformat() for i in range(count, 0, -1)]


def prepare_dagster_home(settings: Settings) -> Path:
    """Use DAGSTER_HOME if set, else the data root's; give it the project's dagster.yaml."""
    home = Path(settings.dagster_home_env or settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)  # for the dagster instance this process opens
    template = Path(__file__).resolve().parent.parent / "dagster.yaml"
    if not (home / "dagster.yaml").exists() and template.exists():
        shutil.copy(template, home / "dagster.yaml")
    return home


def rows_per_day(info: Pipeline, settings: Settings) -> int:
    """DEMO_ROWS_<PIPELINE> (the name upper-cased), else the pipeline's `demo_rows_per_day`, else
    DEMO_ROWS_PER_DAY, else 100000."""
    return (settings.demo_rows_by_pipeline.get(info.name) or info.spec.demo_rows_per_day
            or settings.demo_rows_per_day or 100_000)


def check_status(evaluations) -> str:
    """`4/4 passed`, or which failed (ERROR) and which only warned (WARN)."""
    import dagster as dg

    failed = [e.check_name for e in evaluations if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    warned = [e.check_name for e in evaluations if not e.passed and e.severity == dg.AssetCheckSeverity.WARN]
    text = f"{len(evaluations) - len(failed) - len(warned)}/{len(evaluations)} passed"
    if warned:
        text += f", WARN: {', '.join(warned)}"
    if failed:
        text += f", FAILED: {', '.join(failed)}"
    return text


def summary(settings: Settings, info: Pipeline, checks: dict[str, str]) -> str:
    """A per-day table: what landed, what was scored and quarantined, by which model, the checks."""
    from batch_inference import serving
    from batch_inference.validation import validate_identifier

    pipeline = validate_identifier(info.name)  # identifiers in the SQL below are validated names
    serving_asset = validate_identifier(info.spec.serving.asset)
    lines = [f"{pipeline}", f"  {'date':<12}{'landed':>9}{'scored':>9}{'quarant.':>9}  {'model':<26}checks"]
    con = serving.connect(settings.lake_uri)
    try:
        rows = con.execute(
            f"SELECT CAST(date AS VARCHAR), count(*), any_value(model_name || ' v' || model_version) "  # noqa: S608
            f"FROM {pipeline}.{serving_asset} GROUP BY 1 ORDER BY 1").fetchall()
        quarantined = {}
        if _has_view(con, pipeline, "quarantine"):
            sql = f"SELECT CAST(date AS VARCHAR), count(*) FROM {pipeline}.quarantine GROUP BY 1"  # noqa: S608
            quarantined = dict(con.execute(sql).fetchall())
    finally:
        con.close()
    for date, scored, model in rows:
        q = quarantined.get(date, 0)
        lines.append(f"  {date:<12}{scored + q:>9,}{scored:>9,}{q:>9,}  {model:<26}{checks.get(date, '')}")
    return "\n".join(lines)


def _has_view(con, schema: str, name: str) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_views() WHERE schema_name = ? AND view_name = ?",
                            [schema, name]).fetchall())


def run_pipeline(defs, instance, info: Pipeline, days: list[str], settings: Settings) -> tuple[dict, int, float]:
    """Land, ingest, build the model, score and publish `days` of one pipeline."""
    rows = rows_per_day(info, settings)
    if info.upstream_key is not None:
        materialize_upstream(defs, instance, info, days)
    else:
        landing = Path(settings.landing_uri)
        for day in days:
            if not (landing / f"{info.spec.input.landing_entity}_{day}.parquet").exists():
                write_landing_file(day, rows, landing, pipeline=info.name)
    name = info.name
    ingest, train, score = (defs.resolve_job_def(f"{name}_{j}") for j in ("ingest_day", "train_model", "score_day"))
    for day in days:
        ingest.execute_in_process(partition_key=day, instance=instance)
    if info.upstream_key is not None:
        rows = upstream_rows(instance, info, days[-1])
    print(f"  {name}: ingested {len(days)} days x {rows:,} rows")
    if info.spec.labels is not None:  # the labels that became known on each day (chargebacks come later)
        labels = defs.resolve_job_def(f"{name}_labels_day")
        for day in days:
            labels.execute_in_process(partition_key=day, instance=instance)
        print(f"  {name}: landed the labels known by {days[-1]}")
    train.execute_in_process(instance=instance)
    print(f"  {name}: built and registered the model")
    started = time.perf_counter()
    checks = {}
    for day in days:
        result = score.execute_in_process(partition_key=day, instance=instance, raise_on_error=False)
        checks[day] = check_status(result.get_asset_check_evaluations())
        print(f"  {name}: scored {day}: checks {checks[day]}")
    return checks, rows * len(days), time.perf_counter() - started


def materialize_upstream(defs, instance, info: Pipeline, days: list[str]) -> None:
    """Materialize an upstream-fed pipeline's upstream asset for `days` (with its own defaults), as its
    owner would."""
    job = defs.resolve_implicit_global_asset_job_def()
    for day in days:
        job.execute_in_process(partition_key=day, instance=instance, asset_selection=[info.upstream_key])
    print(f"  {info.name}: materialized the upstream {info.upstream_key.to_user_string()} for {len(days)} days")


def upstream_rows(instance, info: Pipeline, day: str) -> int:
    """Rows the input asset took from the upstream on `day` (its materialization's `upstream_rows`)."""
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=info.input_key, asset_partitions=[day]), limit=1).records
    meta = records[0].asset_materialization.metadata if records else {}
    return int(meta["upstream_rows"].value) if "upstream_rows" in meta else 0


def main() -> int:
    started = time.perf_counter()
    settings = load_settings()
    days_count = settings.demo_days
    home = prepare_dagster_home(settings)
    days = demo_days(days_count)
    only = settings.demo_pipelines
    pipelines = [info for name, info in discover().items() if not only or name in only]
    print(f"batch_inference demo: {days_count} days of {', '.join(p.name for p in pipelines)}; "
          f"data root {settings.home}")

    from dagster import DagsterInstance

    from batch_inference.definitions import build_definitions

    defs = build_definitions()
    instance = DagsterInstance.get()
    results, failed = {}, {}
    for info in pipelines:
        try:
            results[info.name] = run_pipeline(defs, instance, info, days, settings)
        except Exception as exc:  # one broken pipeline must not hide the others' results
            failed[info.name] = f"{type(exc).__name__}: {exc}"
            print(f"  {info.name}: FAILED: {failed[info.name]}", file=sys.stderr)
    print()
    for info in pipelines:
        if info.name in failed:
            print(f"{info.name}\n  FAILED: {failed[info.name]}\n")
            continue
        checks, rows, seconds = results[info.name]
        print(summary(settings, info, checks))
        print(f"  scoring {rows:,} rows took {seconds:.1f} s ({rows / seconds:,.0f} rows/s end to end through "
              "Dagster, checks and publish included)\n")
    print(f"wall time {time.perf_counter() - started:.1f} s")
    print(f"query: duckdb -init {settings.warehouse_sql}   (views {', '.join(p.name + '.*' for p in pipelines)})")
    print(f"DAGSTER_HOME={home}  ->  `make dev` shows these runs at http://127.0.0.1:3000")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
