"""The MLflow model registry as the project uses it: register, promote `champion`, load safely.

Versions carry tags that make them verifiable: the format, the SHA-256 of the weights and of
the config. Loading checks the format tag before downloading anything, and the digests before
deserialising anything; weights are safetensors, so no code can run on load.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batch_inference.modeling.artifact import (
    CONFIG_FILE,
    MODEL_FORMAT,
    WEIGHTS_FILE,
    ModelConfig,
    sha256_file,
)

if TYPE_CHECKING:  # torch and mlflow are imported only where a model is trained, saved or loaded
    from mlflow import MlflowClient

    from batch_inference.modeling.network import RiskMLP
    from batch_inference.modeling.training import TrainedModel

CHAMPION = "champion"
EXPERIMENT = "batch_inference"
ARTIFACT_PATH = "model"
REFERENCE_FILE = "reference.json"
TAG_FORMAT = "batch_inference.format"
TAG_WEIGHTS = "batch_inference.weights_sha256"
TAG_CONFIG = "batch_inference.config_sha256"

# Our processes never need pickle deserialisation from MLflow.
os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


_LOADED: dict[tuple, LoadedModel] = {}


class ModelRegistryError(RuntimeError):
    """The registry has no usable model, or a version fails verification."""


class UntrustedModelError(ModelRegistryError):
    """A version that is not in the project's safe format or whose digest does not match."""


@dataclass(frozen=True)
class ModelVersionRef:
    """One registered version, with what is needed to verify it."""

    name: str
    version: str
    run_id: str
    format: str | None
    weights_sha256: str | None
    config_sha256: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass
class LoadedModel:
    ref: ModelVersionRef
    model: RiskMLP
    config: ModelConfig
    reference: dict


class ModelRegistry:
    """Thin wrapper over MlflowClient for one registered model name."""

    def __init__(self, tracking_uri: str, model_name: str, artifact_root: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.artifact_root = artifact_root
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            from mlflow import MlflowClient  # lazy: mlflow import costs seconds

            if self.tracking_uri.startswith("sqlite:///"):
                Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(EXPERIMENT)
        if found is not None:
            return found.experiment_id
        location = None  # a tracking server chooses (and proxies) its own artifact store
        if self.artifact_root and not self.tracking_uri.startswith(("http://", "https://")):
            location = self.artifact_root if "://" in self.artifact_root else Path(self.artifact_root).as_uri()
        return self.client.create_experiment(EXPERIMENT, artifact_location=location)

    # --- reading -----------------------------------------------------------------------------

    def _ref(self, mv) -> ModelVersionRef:
        tags = mv.tags or {}
        return ModelVersionRef(
            name=mv.name, version=str(mv.version), run_id=mv.run_id or "",
            format=tags.get(TAG_FORMAT), weights_sha256=tags.get(TAG_WEIGHTS),
            config_sha256=tags.get(TAG_CONFIG),
        )

    def champion(self) -> ModelVersionRef | None:
        """The version the `champion` alias names, or None if there is none."""
        from mlflow.exceptions import MlflowException

        try:
            return self._ref(self.client.get_model_version_by_alias(self.model_name, CHAMPION))
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
                return None
            raise

    def require_champion(self) -> ModelVersionRef:
        ref = self.champion()
        if ref is None:
            raise ModelRegistryError(
                f"no '{CHAMPION}' alias on registered model {self.model_name!r} at {self.tracking_uri}: "
                "materialize the `model` asset first"
            )
        return ref

    def experiment_of(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.experiment_id

    def version(self, version: str) -> ModelVersionRef:
        return self._ref(self.client.get_model_version(self.model_name, str(version)))

    def load(self, ref: ModelVersionRef) -> LoadedModel:
        """Download, verify digests, and load a version; refuse anything not in our format.

        A verified version is kept for the life of the process (keyed by its digests), so the
        steps of one run resolve and load it once.
        """
        key = (self.tracking_uri, ref.name, ref.version, ref.format, ref.weights_sha256, ref.config_sha256)
        if key not in _LOADED:
            _LOADED.clear()  # one model at a time is plenty for a run
            _LOADED[key] = self._load(ref)
        return _LOADED[key]

    def _load(self, ref: ModelVersionRef) -> LoadedModel:
        if ref.format != MODEL_FORMAT:
            raise UntrustedModelError(
                f"model {ref.uri} is not in the project's format (tag {TAG_FORMAT}={ref.format!r}, "
                f"expected {MODEL_FORMAT!r}); refusing to load it, nothing in it was deserialised"
            )
        if not (ref.weights_sha256 and ref.config_sha256 and ref.run_id):
            raise UntrustedModelError(f"model {ref.uri} has no recorded artifact digests; refusing to load it")
        with tempfile.TemporaryDirectory(prefix="bi-model-") as tmp:
            local = Path(self.client.download_artifacts(ref.run_id, ARTIFACT_PATH, tmp))
            for name, expected in ((WEIGHTS_FILE, ref.weights_sha256), (CONFIG_FILE, ref.config_sha256)):
                path = local / name
                if not path.is_file():
                    raise UntrustedModelError(f"model {ref.uri}: artifact {name} is missing")
                found = sha256_file(path)
                if found != expected:
                    raise UntrustedModelError(
                        f"model {ref.uri}: SHA-256 mismatch for {name}: expected {expected}, found {found}; "
                        "the artifact was modified after registration, refusing to load it"
                    )
            from batch_inference.modeling.network import load_model

            model, config = load_model(local)
            reference_path = local / REFERENCE_FILE
            reference = json.loads(reference_path.read_text()) if reference_path.is_file() else {}
        return LoadedModel(ref, model, config, reference)

    # --- writing -----------------------------------------------------------------------------

    def register(self, trained: TrainedModel, params: dict | None = None) -> ModelVersionRef:
        """Log the trained model as an MLflow run and register it as a new version."""
        from mlflow.exceptions import MlflowException

        run = self.client.create_run(self._experiment_id(), run_name=f"train-{self.model_name}")
        run_id = run.info.run_id
        try:
            for key, value in (params or {}).items():
                self.client.log_param(run_id, key, value)
            for key, value in trained.metrics.items():
                self.client.log_metric(run_id, key, value)
            with tempfile.TemporaryDirectory(prefix="bi-model-") as tmp:
                from batch_inference.modeling.network import save_model

                directory = Path(tmp) / ARTIFACT_PATH
                digests = save_model(trained.model, trained.config, directory)
                (directory / REFERENCE_FILE).write_text(json.dumps(trained.reference))
                self.client.log_artifacts(run_id, str(directory), ARTIFACT_PATH)
            self.client.set_terminated(run_id)
        except Exception:
            self.client.set_terminated(run_id, status="FAILED")
            raise
        try:
            self.client.create_registered_model(self.model_name)
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                raise
        tags = {TAG_FORMAT: MODEL_FORMAT, TAG_WEIGHTS: digests["weights_sha256"],
                TAG_CONFIG: digests["config_sha256"]}
        tags.update({f"metric.{k}": f"{v:.6f}" for k, v in trained.metrics.items()})
        mv = self.client.create_model_version(
            self.model_name, source=f"runs:/{run_id}/{ARTIFACT_PATH}", run_id=run_id, tags=tags
        )
        return self._ref(mv)

    def set_champion(self, version: str) -> None:
        self.client.set_registered_model_alias(self.model_name, CHAMPION, str(version))

    def run_url(self, ref: ModelVersionRef) -> str:
        return f"{self.tracking_uri} run {ref.run_id}"
