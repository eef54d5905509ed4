"""Where things live and how the platform runs: one data root and the environment variables
that override its parts.

The one module that reads the environment, always when `load_settings()` is called (never at
import time), so a code server and a run worker each see their own process's values. Plain Python
(no Dagster import) so the library, the CLI, the demo and the benches share it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOME = ".batch_inference"


@dataclass(frozen=True)
class Settings:
    """Resolved locations of the embedded default (overridable one by one)."""

    home: Path
    lake_uri: str
    landing_uri: str
    warehouse_sql: Path
    mlflow_tracking_uri: str
    mlflow_artifact_root: str
    partitions_start: str | None
    pushgateway_url: str
    environment: str = "local"  # `local` (embedded default) or `prod` (Kubernetes, S3, Postgres)
    partitions_per_run: int | None = None  # overrides every pipeline's `backfill.partitions_per_run`
    sensors_stopped: bool = False  # pipelines' sensors start stopped (tests, benches)
    warehouse_sql_env: str = ""  # the views file only if set explicitly (prod: none by default)
    s3_endpoint: str = ""  # AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (MinIO, LocalStack)
    aws_region: str = "us-east-1"
    otlp_endpoint: str = ""  # traces exported over OTLP/HTTP when set
    crash_at: str = ""  # fault injection of the crash tests: SIGKILL at this named point
    dagster_home_env: str = ""  # DAGSTER_HOME, when set
    demo_days: int = 7
    demo_pipelines: tuple[str, ...] = ()  # empty: every pipeline
    demo_rows_per_day: int | None = None  # DEMO_ROWS_PER_DAY
    demo_rows_by_pipeline: Mapping[str, int] = field(default_factory=dict)  # DEMO_ROWS_<PIPELINE>
    bench: Mapping[str, str] = field(default_factory=dict)  # BENCH_<KNOB> of the benchmarks, by KNOB
    alertmanager_url: str = ""  # where the alert sensor posts (Alertmanager's base URL); empty: no alerts

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from the environment, defaulting everything under BATCH_INFERENCE_HOME."""
    env = os.environ if env is None else env
    home = Path(env.get("BATCH_INFERENCE_HOME") or DEFAULT_HOME).expanduser().resolve()
    mlflow_dir = home / "mlflow"
    return Settings(
        home=home,
        lake_uri=env.get("BATCH_INFERENCE_LAKE_URI") or str(home / "lake"),
        landing_uri=env.get("BATCH_INFERENCE_LANDING_URI") or str(home / "landing"),
        warehouse_sql=Path(env.get("BATCH_INFERENCE_WAREHOUSE_SQL") or home / "warehouse.sql"),
        mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{mlflow_dir / 'mlflow.db'}",
        mlflow_artifact_root=env.get("BATCH_INFERENCE_MLFLOW_ARTIFACTS") or str(mlflow_dir / "artifacts"),
        partitions_start=env.get("BATCH_INFERENCE_PARTITIONS_START") or None,
        pushgateway_url=env.get("BATCH_INFERENCE_PUSHGATEWAY_URL") or "",
        environment=_environment(env),
        partitions_per_run=_int(env, "BATCH_INFERENCE_PARTITIONS_PER_RUN"),
        sensors_stopped=env.get("BATCH_INFERENCE_SENSORS") == "stopped",
        warehouse_sql_env=env.get("BATCH_INFERENCE_WAREHOUSE_SQL") or "",
        s3_endpoint=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or "",
        aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        otlp_endpoint=env.get("BATCH_INFERENCE_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "",
        crash_at=env.get("BATCH_INFERENCE_CRASH_AT") or "",
        dagster_home_env=env.get("DAGSTER_HOME") or "",
        demo_days=_int(env, "DEMO_DAYS") or 7,
        demo_pipelines=tuple(p for p in (env.get("DEMO_PIPELINES") or "").split(",") if p),
        demo_rows_per_day=_int(env, "DEMO_ROWS_PER_DAY"),
        demo_rows_by_pipeline={k.removeprefix("DEMO_ROWS_").lower(): int(v) for k, v in env.items()
                               if k.startswith("DEMO_ROWS_") and k != "DEMO_ROWS_PER_DAY" and v},
        bench={k.removeprefix("BENCH_"): v for k, v in env.items() if k.startswith("BENCH_") and v},
        alertmanager_url=env.get("BATCH_INFERENCE_ALERTMANAGER_URL") or "",
    )


def _int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {value!r}") from None


def _environment(env: Mapping[str, str]) -> str:
    value = env.get("BATCH_INFERENCE_ENV") or "local"
    if value not in ("local", "prod"):
        raise ValueError(f"BATCH_INFERENCE_ENV must be 'local' or 'prod', not {value!r}")
    return value


@dataclass(frozen=True)
class BenchBackfillSettings:
    """Knobs of `make bench-backfill` (BENCH_BACKFILL_*)."""

    pipeline: str
    home: Path
    days: int
    rows: int
    partitions_per_run: int
    strategies: tuple[str, ...]
    bad_days: int = 0  # truncated landing files in an extra ranged backfill (published in the first pass?)


def load_bench_backfill_settings(env: Mapping[str, str] | None = None) -> BenchBackfillSettings:
    env = os.environ if env is None else env
    return BenchBackfillSettings(
        pipeline=env.get("BENCH_BACKFILL_PIPELINE") or "",
        home=Path(env.get("BENCH_BACKFILL_HOME") or "bench_backfill_home").resolve(),
        days=_int(env, "BENCH_BACKFILL_DAYS") or 365,
        rows=_int(env, "BENCH_BACKFILL_ROWS") or 20_000,
        partitions_per_run=_int(env, "BENCH_BACKFILL_N") or 30,
        strategies=tuple((env.get("BENCH_BACKFILL_STRATEGIES") or "ranged,per_partition").split(",")),
        bad_days=_int(env, "BENCH_BACKFILL_BAD_DAYS") or 0,
    )


def environment_copy(**overrides: str) -> dict[str, str]:
    """This process's environment with `overrides`, for a child process."""
    return {**os.environ, **overrides}


def export_library_settings(values: Mapping[str, str], defaults: Mapping[str, str] | None = None) -> None:
    """Hand settings to a third-party library that reads them from this process's environment (MLflow's
    HTTP budget, the Hugging Face offline flags): `values` are set, `defaults` only where unset. The one
    place besides `load_settings` that touches the environment; called when a client is built."""
    os.environ.update(values)
    for name, value in (defaults or {}).items():
        os.environ.setdefault(name, value)
