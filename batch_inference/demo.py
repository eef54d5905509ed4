"""`make demo`: a week of data through Dagster on the embedded default, then a summary.

Generates landing files for the most recent complete days, materializes `transactions` and
`features` for each, trains and registers the `model`, scores every day into `predictions`,
publishes them to the warehouse, and prints what happened. Runs are recorded in DAGSTER_HOME,
so `make dev` shows the same history.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path

from batch_inference.settings import Settings, load_settings


def demo_days(count: int, today: dt.date | None = None) -> list[str]:
    """The `count` most recent complete days (UTC), oldest first."""
    today = today or dt.datetime.now(dt.UTC).date()
    return [(today - dt.timedelta(days=i)).isoformat() for i in range(count, 0, -1)]


def prepare_dagster_home(settings: Settings) -> Path:
    """Use DAGSTER_HOME if set, else the data root's; give it the project's dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    template = Path(__file__).resolve().parent.parent / "dagster.yaml"
    if not (home / "dagster.yaml").exists() and template.exists():
        shutil.copy(template, home / "dagster.yaml")
    return home


def summary(settings: Settings, checks: dict[str, str] | None = None) -> str:
    """A per-day table of what landed, what was scored and by which model."""
    from batch_inference.lake import Lake
    from batch_inference.warehouse import connect

    lake = Lake(settings.lake_uri)
    lines = [f"{'date':<12}{'landed':>9}{'scored':>9}{'quarant.':>9}  {'model':<22}{'mean score':>11}"
             f"{'score>0.5':>10}{'fraud rate':>11}  checks"]
    with connect(settings.warehouse_path, read_only=True) as con:
        rows = con.execute(
            "SELECT CAST(date AS VARCHAR), count(*), any_value(model_name || ' v' || model_version), "
            "avg(score), sum(CAST(score > 0.5 AS INTEGER)) FROM serving_predictions GROUP BY 1 ORDER BY 1"
        ).fetchall()
        for date, scored, model, mean, high in rows:
            transactions = lake.read("transactions", date, columns=["is_fraud"])
            quarantined = con.execute(
                "SELECT count(*) FROM quarantine WHERE CAST(date AS VARCHAR) = ?", [date]
            ).fetchall()[0][0] if _has_view(con, "quarantine") else 0
            landed = transactions.num_rows + quarantined
            fraud = transactions.column("is_fraud").to_numpy().mean() if transactions.num_rows else 0.0
            lines.append(f"{date:<12}{landed:>9,}{scored:>9,}{quarantined:>9,}  {model:<22}{mean:>11.4f}"
                         f"{high:>10,}{fraud:>11.2%}  {(checks or {}).get(date, '')}")
    return "\n".join(lines)


def _has_view(con, name: str) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_views() WHERE view_name = ?", [name]).fetchall())


def main() -> int:
    started = time.perf_counter()
    settings = load_settings()
    days_count = int(os.environ.get("DEMO_DAYS", "7"))
    rows_per_day = int(os.environ.get("DEMO_ROWS_PER_DAY", "100000"))
    home = prepare_dagster_home(settings)
    days = demo_days(days_count)
    print(f"batch_inference demo: {days_count} days x {rows_per_day:,} rows, data root {settings.home}")

    from batch_inference.cli import write_landing_file

    landing = Path(settings.landing_uri)
    for day in days:
        if not (landing / f"transactions_{day}.parquet").exists():
            write_landing_file(day, rows_per_day, landing)

    from dagster import DagsterInstance

    from batch_inference.definitions import defs

    instance = DagsterInstance.get()
    ingest, train, score = (defs.resolve_job_def(n) for n in ("ingest_day", "train_model", "score_day"))
    for day in days:
        ingest.execute_in_process(partition_key=day, instance=instance)
        print(f"  ingested {day}")
    train.execute_in_process(instance=instance)
    print("  trained and registered the model")
    score_started = time.perf_counter()
    checks = {}
    for day in days:
        result = score.execute_in_process(partition_key=day, instance=instance, raise_on_error=False)
        evaluations = result.get_asset_check_evaluations()
        failed = [e.check_name for e in evaluations if not e.passed]
        checks[day] = f"{len(evaluations) - len(failed)}/{len(evaluations)} passed" + (
            f" (failed: {', '.join(failed)})" if failed else "")
        print(f"  scored {day}: checks {checks[day]}")
    score_seconds = time.perf_counter() - score_started
    total = time.perf_counter() - started
    print()
    print(summary(settings, checks))
    rows = days_count * rows_per_day
    print(f"\nwall time {total:.1f} s; scoring {rows:,} rows took {score_seconds:.1f} s "
          f"({rows / score_seconds:,.0f} rows/s end to end through Dagster)")
    print(f"DAGSTER_HOME={home}  ->  `make dev` shows these runs at http://127.0.0.1:3000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
