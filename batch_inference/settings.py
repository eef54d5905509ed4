"""Where things live: one data root and the environment variables that override its parts.

Plain Python (no Dagster import) so the library, the CLI and the demo share it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
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
    )
