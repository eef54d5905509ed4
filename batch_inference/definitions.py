"""The code location: every pipeline of the `defs/` folder, plus resources and executor by environment.

`defs` is an `@dg.definitions` function (what `dagster dev`, `dg` and `dagster asset materialize -m
batch_inference.definitions` load). Each pipeline is one `BatchScoring` instance in a
`defs/<pipeline>/defs.yaml`; the resources and the executor are picked here, in one place.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource

from batch_inference.resources import (
    LakeResource,
    ModelRegistryResource,
    ObservabilityResource,
    QualityResource,
    WarehouseResource,
)
from batch_inference.settings import Settings, load_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# By design the input asset has its own backfill policy (single_run) and its dependents a ranged one
# (README, "Backfills: each day stands alone"), so each job that spans both makes Dagster warn on every
# load that its assets' policies vary (with empty key lists, in 1.13.27). The job-level policy it
# falls back to (the smallest range) is the one we want; the message is noise in every run's log.
warnings.filterwarnings("ignore", message=r"Asset job \S+ materializes assets with varying BackfillPolicies",
                        category=UserWarning)


def environment() -> str:
    """`local` (the embedded default) or `prod` (Kubernetes, S3, Postgres, MLflow server)."""
    return load_settings().environment


def build_resources(settings: Settings | None = None, env: str = "local") -> dict[str, dg.ConfigurableResource]:
    """Resources for an environment: the one place that picks them.

    Locally every value has a default under BATCH_INFERENCE_HOME and its own environment variable
    (e.g. BATCH_INFERENCE_LAKE_URI=s3://bucket/lake alone moves the lake to S3). In production each
    is read from the environment at run time (`dg.EnvVar`), so no value or secret sits in code, in
    the run config or in the UI.
    """
    settings = settings or load_settings()
    if env == "prod":
        return {
            "lake": LakeResource(lake_uri=dg.EnvVar("BATCH_INFERENCE_LAKE_URI"),
                                 landing_uri=dg.EnvVar("BATCH_INFERENCE_LANDING_URI")),
            # With the lake on S3 the published Parquet objects are the serving table; no views file.
            "warehouse": WarehouseResource(views_sql=settings.warehouse_sql_env),
            "model_registry": ModelRegistryResource(tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI")),
            "quality": QualityResource(),
            "observability": ObservabilityResource(pushgateway_url=settings.pushgateway_url),
            "s3": S3Resource(),  # credentials, region and endpoint from the standard AWS variables
        }
    return {
        "lake": LakeResource(lake_uri=settings.lake_uri, landing_uri=settings.landing_uri),
        "quality": QualityResource(),
        "observability": ObservabilityResource(pushgateway_url=settings.pushgateway_url),
        "s3": S3Resource(),
        "warehouse": WarehouseResource(views_sql=str(settings.warehouse_sql)),
        "model_registry": ModelRegistryResource(tracking_uri=settings.mlflow_tracking_uri,
                                                artifact_root=settings.mlflow_artifact_root),
    }


def build_executor(env: str = "local") -> dg.ExecutorDefinition:
    """Locally a run's steps share one process (imports and the model load are paid once per
    run); in production each step is its own pod (`k8s_job_executor`), GPU steps on GPU nodes."""
    if env != "prod":
        return dg.in_process_executor
    from dagster_k8s import k8s_job_executor

    from batch_inference.k8s import CPU_STEP_K8S_CONFIG

    return k8s_job_executor.configured({"step_k8s_config": CPU_STEP_K8S_CONFIG, "max_concurrent": 16},
                                       name="k8s_job_executor")


def build_definitions(settings: Settings | None = None, env: str | None = None,
                      project_root: Path = PROJECT_ROOT) -> dg.Definitions:
    """Every pipeline under the project's defs folder, with the environment's resources and executor."""
    env = env or environment()
    pipelines = dg.load_from_defs_folder(path_within_project=project_root)
    from batch_inference.components.platform_sensors import platform_sensors

    return dg.Definitions.merge(pipelines, dg.Definitions(resources=build_resources(settings, env),
                                                          executor=build_executor(env),
                                                          sensors=platform_sensors(env)))


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
