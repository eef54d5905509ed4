"""The MLflow model registry as the platform uses it: register, move an alias, load safely.

Every version carries two tags: its format (which loader may read it) and a manifest with the
SHA-256 of every file (weights, config, tokenizer files, the drift reference). Loading checks the
format tag before downloading anything, and every digest before any file is read; the format's
loader never runs code from the artifact (safetensors, JSON, tokenizer files).

A remote registry (an MLflow tracking server) is called with a bounded budget (`HttpBudget`): MLflow's
own connect/read timeout and a few fast retries, set when the client is built. Once they are spent,
an unreachable or failing server raises `RegistryUnavailableError`, a permanent error: the step fails
at once, naming the URI and the runbook, instead of being retried for minutes.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from batch_inference.failures import is_transient
from batch_inference.modeling.artifact import (
    REFERENCE_FILE,
    CorruptArtifactError,
    manifest,
    manifest_digest,
    sha256_file,
    valid_file_name,
)
from batch_inference.settings import export_library_settings

if TYPE_CHECKING:  # mlflow is imported only where a model is registered or loaded
    from mlflow import MlflowClient

    from batch_inference.plugins.protocols import LoadedArtifact, ModelFormat, TrainedArtifact

DEFAULT_ALIAS = "champion"
EXPERIMENT = "batch_inference"
ARTIFACT_PATH = "model"
TAG_FORMAT = "batch_inference.format"
TAG_FILES = "batch_inference.files"
RUNBOOK = "docs/runbooks/F4.md"  # section "Registry unreachable"

_LOADED: dict[tuple, LoadedModel] = {}


class ModelRegistryError(RuntimeError):
    """The registry has no usable model, or a version fails verification."""


class UntrustedModelError(ModelRegistryError):
    """A version not in a known safe format, or whose files do not match their digests."""


class RegistryUnavailableError(ModelRegistryError):
    """The registry did not answer (or answered 5xx/429) within its whole budget of retries.

    Permanent for the step's retry policy: MLflow has already retried within the budget, and a
    registry that is down for longer is an operator's problem (runbook), not the step's.
    """


@dataclass(frozen=True)
class HttpBudget:
    """MLflow's HTTP client settings for a remote registry: the bound on one registry call.

    `timeout_s` is MLflow's connect and read timeout (whole seconds); `max_retries` fast retries
    follow a failed attempt, sleeping 0, then `backoff_factor * 2**(n-1)` seconds (+ up to
    `backoff_jitter`). The defaults bound one call to about 3 x 10 + 2.5 = 33 s.
    """

    timeout_s: int = 10
    max_retries: int = 2
    backoff_factor: int = 1
    backoff_jitter: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.timeout_s <= 600:
            raise ValueError(f"registry HTTP timeout must be 1..600 s, not {self.timeout_s}")
        if not 0 <= self.max_retries <= 10:  # MLflow refuses more than 10
            raise ValueError(f"registry HTTP retries must be 0..10, not {self.max_retries}")
        if not 0 <= self.backoff_factor <= 120 or self.backoff_jitter < 0:
            raise ValueError(f"registry HTTP backoff must be 0..120 s with jitter >= 0, not "
                             f"{self.backoff_factor} / {self.backoff_jitter}")

    @property
    def attempts(self) -> int:
        return self.max_retries + 1

    @property
    def worst_case_s(self) -> float:
        """The longest one call can take: every attempt times out, every back-off at its longest."""
        sleeps = sum(self.backoff_factor * 2 ** (n - 1) + self.backoff_jitter for n in range(2, self.attempts))
        return self.attempts * self.timeout_s + sleeps

    def mlflow_env(self) -> dict[str, str]:
        """The MLflow environment variables this budget sets, plus the settings every process needs."""
        return {
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.timeout_s),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.max_retries),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(self.backoff_factor),
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": str(self.backoff_jitter),
            # Our processes never need pickle deserialisation from MLflow, nor its progress bars.
            "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }


def configure_mlflow(budget: HttpBudget) -> None:
    """Apply `budget` to MLflow's HTTP client (process-wide: MLflow reads these on every request)."""
    export_library_settings(budget.mlflow_env())


def redacted_uri(uri: str) -> str:
    """`uri` without a user or password, fit for an error message."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (MLflow wraps the socket error in three layers)."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc


class _BudgetedClient:
    """An MlflowClient whose every call turns "unreachable after the budget" into RegistryUnavailableError."""

    def __init__(self, client: MlflowClient, tracking_uri: str, budget: HttpBudget) -> None:
        self._client, self._uri, self._budget = client, redacted_uri(tracking_uri), budget

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                root = _root_cause(exc)
                cause = " ".join(f"{type(root).__name__}: {root}".split())
                raise RegistryUnavailableError(
                    f"MLflow registry at {self._uri} is unreachable: {name} failed after "
                    f"{self._budget.attempts} attempt(s) ({self._budget.timeout_s} s timeout each, "
                    f"{self._budget.max_retries} fast retries); last error {cause[:400]}. "
                    f"Not retried further; see {RUNBOOK} (Registry unreachable)") from exc

        return call


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
                 formats: Mapping[str, ModelFormat] | None = None, alias: str = DEFAULT_ALIAS,
                 http: HttpBudget | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.artifact_root = artifact_root
        self.formats = dict(formats or {})
        self.alias = alias
        self.http = http or HttpBudget()
        self._client: Any = None  # MlflowClient, or the budgeted wrapper of one

    @property
    def remote(self) -> bool:
        """A tracking server (HTTP), as opposed to a local sqlite/file store."""
        return self.tracking_uri.startswith(("http://", "https://"))

    @property
    def client(self) -> MlflowClient:
        """The MLflow client, built on first use with this registry's HTTP budget applied."""
        if self._client is None:
            from mlflow import MlflowClient  # lazy: mlflow import costs seconds

            configure_mlflow(self.http)
            if self.tracking_uri.startswith("sqlite:///"):
                Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            # A local store's transient errors (a sqlite lock) stay transient: the step's retries ride them out.
            self._client = _BudgetedClient(client, self.tracking_uri, self.http) if self.remote else client
        return self._client

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(EXPERIMENT)
        if found is not None:
            return found.experiment_id
        location = None  # a tracking server chooses (and proxies) its own artifact store
        if self.artifact_root and not self.remote:
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

    # --- versions' tags and other aliases (the promotion gate's record) ---------------------------

    def version_tags(self, version: str) -> dict[str, str]:
        """Every tag of one version (the gate's state is recorded there)."""
        return dict(self.client.get_model_version(self.model_name, str(version)).tags or {})

    def set_version_tag(self, version: str, key: str, value: str) -> None:
        self.client.set_model_version_tag(self.model_name, str(version), key, value)

    def alias_version(self, alias: str) -> ModelVersionRef | None:
        """The version another alias (e.g. `challenger`) names, or None."""
        from mlflow.exceptions import MlflowException

        try:
            return self._ref(self.client.get_model_version_by_alias(self.model_name, alias))
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
                return None
            raise

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.model_name, alias, str(version))

    def delete_alias(self, alias: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_registered_model_alias(self.model_name, alias)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" not in str(exc.error_code) and "not found" not in str(exc).lower():
                raise
