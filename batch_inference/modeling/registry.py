"""The MLflow model registry as the platform uses it: register, move an alias, load safely.

Every version carries two tags: its format (which loader may read it) and a manifest with the
SHA-256 of every file (weights, config, tokenizer files, the drift reference). Loading checks the
format tag before downloading anything, and every digest before any file is read; the format's
loader never runs code from the artifact (safetensors, JSON, tokenizer files).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch_inference.modeling.artifact import (
    REFERENCE_FILE,
    CorruptArtifactError,
    manifest,
    manifest_digest,
    sha256_file,
    valid_file_name,
)

if TYPE_CHECKING:  # mlflow is imported only where a model is registered or loaded
    from mlflow import MlflowClient

    from batch_inference.plugins.protocols import LoadedArtifact, ModelFormat, TrainedArtifact

DEFAULT_ALIAS = "champion"
EXPERIMENT = "batch_inference"
ARTIFACT_PATH = "model"
TAG_FORMAT = "batch_inference.format"
TAG_FILES = "batch_inference.files"

# Our processes never need pickle deserialisation from MLflow.
os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

_LOADED: dict[tuple, LoadedModel] = {}


class ModelRegistryError(RuntimeError):
    """The registry has no usable model, or a version fails verification."""


class UntrustedModelError(ModelRegistryError):
    """A version not in a known safe format, or whose files do not match their digests."""


@dataclass(frozen=True)
class ModelVersionRef:
    """One registered version, with what is needed to verify it."""

    name: str
    version: str
    run_id: str
    format: str | None
    files: Mapping[str, str]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def artifact_sha256(self) -> str:
        """One digest over every file of the version (what the ledger records)."""
        return manifest_digest(dict(self.files)) if self.files else ""


@dataclass
class LoadedModel:
    ref: ModelVersionRef
    artifact: LoadedArtifact
    reference: dict

    @property
    def model(self) -> Any:
        return self.artifact.module

    @property
    def config(self) -> dict:
        return self.artifact.config


def _parse_files(tag: str | None) -> dict[str, str]:
    if not tag:
        return {}
    try:
        files = json.loads(tag)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


class ModelRegistry:
    """Thin wrapper over MlflowClient for one registered model name and its alias."""

    def __init__(self, tracking_uri: str, model_name: str, artifact_root: str | None = None,
                 formats: Mapping[str, ModelFormat] | None = None, alias: str = DEFAULT_ALIAS) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.artifact_root = artifact_root
        self.formats = dict(formats or {})
        self.alias = alias
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
        return ModelVersionRef(name=mv.name, version=str(mv.version), run_id=mv.run_id or "",
                               format=tags.get(TAG_FORMAT), files=_parse_files(tags.get(TAG_FILES)))

    def champion(self) -> ModelVersionRef | None:
        """The version the alias names, or None if there is none."""
        from mlflow.exceptions import MlflowException

        try:
            return self._ref(self.client.get_model_version_by_alias(self.model_name, self.alias))
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
                return None
            raise

    def require_champion(self) -> ModelVersionRef:
        ref = self.champion()
        if ref is None:
            raise ModelRegistryError(
                f"no '{self.alias}' alias on registered model {self.model_name!r} at {self.tracking_uri}: "
                "materialize the pipeline's `model` asset first (or register a version and set the alias)"
            )
        return ref

    def experiment_of(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.experiment_id

    def version(self, version: str) -> ModelVersionRef:
        return self._ref(self.client.get_model_version(self.model_name, str(version)))

    def load(self, ref: ModelVersionRef) -> LoadedModel:
        """Download, verify every file's digest, and load a version; refuse anything else.

        A verified version is kept for the life of the process (keyed by its digests), so the
        steps of one run resolve and load it once.
        """
        key = (self.tracking_uri, ref.name, ref.version, ref.format, ref.artifact_sha256)
        if key not in _LOADED:
            if len(_LOADED) >= 2:
                _LOADED.clear()  # a run needs one model, a champion comparison two
            _LOADED[key] = self._load(ref)
        return _LOADED[key]

    def _load(self, ref: ModelVersionRef) -> LoadedModel:
        fmt = self.formats.get(ref.format or "")
        if fmt is None:
            raise UntrustedModelError(
                f"model {ref.uri} is not in a format this pipeline loads (tag {TAG_FORMAT}={ref.format!r}, "
                f"expected one of {sorted(self.formats)}); refusing to load it, nothing in it was read"
            )
        if not ref.files or not ref.run_id:
            raise UntrustedModelError(f"model {ref.uri} has no recorded file digests; refusing to load it")
        if REFERENCE_FILE not in ref.files:
            raise UntrustedModelError(f"model {ref.uri} has no digest-verified {REFERENCE_FILE} (drift reference)")
        with tempfile.TemporaryDirectory(prefix="bi-model-") as tmp:
            local = Path(self.client.download_artifacts(ref.run_id, ARTIFACT_PATH, tmp))
            for name, expected in sorted(ref.files.items()):
                path = local / valid_file_name(name)
                if path.is_symlink() or not path.is_file():
                    raise UntrustedModelError(f"model {ref.uri}: artifact {name} is missing")
                found = sha256_file(path)
                if found != expected:
                    raise UntrustedModelError(
                        f"model {ref.uri}: SHA-256 mismatch for {name}: expected {expected}, found {found}; "
                        "the artifact was modified after registration, refusing to load it"
                    )
            try:
                reference = json.loads((local / REFERENCE_FILE).read_text())
                if not isinstance(reference, dict):
                    raise ValueError("the drift reference is not a JSON object")
                artifact = fmt.load(local, dict(ref.files))
            except Exception as exc:  # the digests matched, so any failure here is a corrupt version
                raise CorruptArtifactError(
                    f"model {ref.uri}: the files match their digests but do not load ({type(exc).__name__}: "
                    f"{exc}); the version is corrupt, re-register it") from exc
        return LoadedModel(ref, artifact, reference)

    # --- writing -----------------------------------------------------------------------------

    def register(self, artifact: TrainedArtifact) -> ModelVersionRef:
        """Log the artifact's files as an MLflow run and register them as a new version."""
        from mlflow.exceptions import MlflowException

        if artifact.format not in self.formats:
            raise ModelRegistryError(f"format {artifact.format!r} has no loader in this pipeline")
        if not (artifact.directory / REFERENCE_FILE).is_file():
            raise ModelRegistryError(f"{artifact.directory} has no {REFERENCE_FILE}: every version needs "
                                     "the drift reference of its training data")
        files = manifest(artifact.directory)
        run = self.client.create_run(self._experiment_id(), run_name=f"register-{self.model_name}")
        run_id = run.info.run_id
        try:
            for key, value in artifact.params.items():
                self.client.log_param(run_id, key, value)
            for key, value in artifact.metrics.items():
                self.client.log_metric(run_id, key, value)
            self.client.log_artifacts(run_id, str(artifact.directory), ARTIFACT_PATH)
            self.client.set_terminated(run_id)
        except Exception:
            self.client.set_terminated(run_id, status="FAILED")
            raise
        try:
            self.client.create_registered_model(self.model_name)
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                raise
        tags = {TAG_FORMAT: artifact.format, TAG_FILES: json.dumps(files, sort_keys=True)}
        tags.update({f"metric.{k}": f"{v:.6f}" for k, v in artifact.metrics.items()})
        mv = self.client.create_model_version(
            self.model_name, source=f"runs:/{run_id}/{ARTIFACT_PATH}", run_id=run_id, tags=tags)
        return self._ref(mv)

    def set_champion(self, version: str) -> None:
        self.client.set_registered_model_alias(self.model_name, self.alias, str(version))
