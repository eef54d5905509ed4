"""The code location: assets, checks, jobs and resources, chosen by environment in one place."""

import os

import dagster as dg
from dagster_aws.s3 import S3Resource

from batch_inference.assets.checks import ALL_CHECKS
from batch_inference.assets.features import features
from batch_inference.assets.ingest import transactions
from batch_inference.assets.model import model
from batch_inference.assets.predictions import predictions
from batch_inference.assets.serving import serving_predictions
from batch_inference.automation.sensors import ALL_SCHEDULES, ALL_SENSORS
from batch_inference.jobs import ALL_JOBS
from batch_inference.resources import (
    AutomationResource,
    LakeResource,
    ModelRegistryResource,
    ObservabilityResource,
    QualityResource,
    WarehouseResource,
)
from batch_inference.settings import Settings, load_settings


def environment() -> str:
    """`local` (the embedded default) or `prod` (Kubernetes, S3, Postgres, MLflow server)."""
    env = os.environ.get("BATCH_INFERENCE_ENV", "local")
    if env not in ("local", "prod"):
        raise ValueError(f"BATCH_INFERENCE_ENV must be 'local' or 'prod', not {env!r}")
    return env


def build_resources(settings: Settings | None = None, env: str = "local") -> dict[str, dg.ConfigurableResource]:
    """Resources for an environment: the one place that picks them.

    Locally every value has a default under BATCH_INFERENCE_HOME and its own environment variable
    (e.g. BATCH_INFERENCE_LAKE_URI=s3://bucket/lake alone moves the lake to S3). In production each
    is read from the environment at run time (`dg.EnvVar`), so no value or secret sits in code, in
    the run config or in the UI.
    """
    if env == "prod":
        return {
            "lake": LakeResource(lake_uri=dg.EnvVar("BATCH_INFERENCE_LAKE_URI"),
                                 landing_uri=dg.EnvVar("BATCH_INFERENCE_LANDING_URI")),
            "warehouse": WarehouseResource(path=dg.EnvVar("BATCH_INFERENCE_WAREHOUSE")),
            "model_registry": ModelRegistryResource(tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI"),
                                                    model_name=dg.EnvVar("BATCH_INFERENCE_MODEL_NAME")),
            "quality": QualityResource(),
            "automation": AutomationResource(),
            "observability": ObservabilityResource(pushgateway_url=os.environ.get("BATCH_INFERENCE_PUSHGATEWAY_URL", "")),
            "s3": S3Resource(),  # credentials, region and endpoint from the standard AWS variables
        }
    settings = settings or load_settings()
    return {
        "lake": LakeResource(lake_uri=settings.lake_uri, landing_uri=settings.landing_uri),
        "quality": QualityResource(),
        "automation": AutomationResource(),
        "observability": ObservabilityResource(pushgateway_url=settings.pushgateway_url),
        "s3": S3Resource(),
        "warehouse": WarehouseResource(path=str(settings.warehouse_path)),
        "model_registry": ModelRegistryResource(
            tracking_uri=settings.mlflow_tracking_uri,
            model_name=settings.model_name,
            artifact_root=settings.mlflow_artifact_root,
        ),
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


ENV = environment()
defs = dg.Definitions(
    assets=[transactions, features, model, predictions, serving_predictions],
    asset_checks=ALL_CHECKS,
    jobs=ALL_JOBS,
    sensors=ALL_SENSORS,
    schedules=ALL_SCHEDULES,
    resources=build_resources(env=ENV),
    executor=build_executor(ENV),
)
