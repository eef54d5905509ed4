"""The MLflow model registry as a Dagster resource, shared by every pipeline."""

from collections.abc import Mapping

import dagster as dg
from pydantic import Field, PrivateAttr

from batch_inference.modeling.registry import DEFAULT_ALIAS, HttpBudget, ModelRegistry


class ModelRegistryResource(dg.ConfigurableResource):
    """The MLflow tracking/registry URI; each pipeline names its own registered model and alias.

    The `http_*` fields bound every call to a remote registry (MLflow's own HTTP settings, applied
    when a registry's client is built): with the defaults a registry that is down fails the step in
    about 3 s (connection refused) to 33 s (no answer), with `RegistryUnavailableError` (no retry).
    """

    tracking_uri: str
    artifact_root: str | None = None
    http_timeout_s: int = Field(default=10, ge=1, le=600,
                                description="MLflow connect and read timeout (MLFLOW_HTTP_REQUEST_TIMEOUT)")
    http_max_retries: int = Field(default=2, ge=0, le=10,
                                  description="Fast retries after a failed call (MLFLOW_HTTP_REQUEST_MAX_RETRIES)")
    http_backoff_factor: int = Field(default=1, ge=0, le=120,
                                     description="Back-off factor, seconds (MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR)")
    http_backoff_jitter: float = Field(default=0.5, ge=0,
                                       description="Random back-off jitter, seconds (MLFLOW_HTTP_REQUEST_BACKOFF_JITTER)")
    _registries: dict = PrivateAttr(default_factory=dict)

    @property
    def http_budget(self) -> HttpBudget:
        return HttpBudget(timeout_s=self.http_timeout_s, max_retries=self.http_max_retries,
                          backoff_factor=self.http_backoff_factor, backoff_jitter=self.http_backoff_jitter)

    def registry(self, model_name: str, formats: Mapping | None = None, alias: str = DEFAULT_ALIAS) -> ModelRegistry:
        """One client per model name and alias for the life of the resource (one run)."""
        key = (model_name, alias)
        if key not in self._registries:
            self._registries[key] = ModelRegistry(self.tracking_uri, model_name, self.artifact_root,
                                                  formats=formats, alias=alias, http=self.http_budget)
        registry = self._registries[key]
        if formats:
            registry.formats.update(formats)
        return registry
