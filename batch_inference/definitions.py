"""The code location: assets, checks, jobs and resources, chosen by environment in one place."""

import dagster as dg

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
    QualityResource,
    WarehouseResource,
)
from batch_inference.settings import Settings, load_settings


def build_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    """Resources for the current environment (the embedded default unless overridden)."""
    settings = settings or load_settings()
    return {
        "lake": LakeResource(lake_uri=settings.lake_uri, landing_uri=settings.landing_uri),
        "quality": QualityResource(),
        "automation": AutomationResource(),
        "warehouse": WarehouseResource(path=str(settings.warehouse_path)),
        "model_registry": ModelRegistryResource(
            tracking_uri=settings.mlflow_tracking_uri,
            model_name=settings.model_name,
            artifact_root=settings.mlflow_artifact_root,
        ),
    }


defs = dg.Definitions(
    assets=[transactions, features, model, predictions, serving_predictions],
    asset_checks=ALL_CHECKS,
    jobs=ALL_JOBS,
    sensors=ALL_SENSORS,
    schedules=ALL_SCHEDULES,
    resources=build_resources(),
    # Locally a run's steps share one process: imports (dagster, torch, mlflow) and the model load
    # are paid once per run, not once per step. Production swaps in the k8s_job_executor.
    executor=dg.in_process_executor,
)
