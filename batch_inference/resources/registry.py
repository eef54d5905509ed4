"""The MLflow model registry as a Dagster resource."""

import dagster as dg
from pydantic import PrivateAttr

from batch_inference.modeling.registry import ModelRegistry


class ModelRegistryResource(dg.ConfigurableResource):
    """MLflow tracking/registry URI and the registered model's name."""

    tracking_uri: str
    model_name: str
    artifact_root: str | None = None
    _registry: ModelRegistry | None = PrivateAttr(default=None)

    def registry(self) -> ModelRegistry:
        """One client per resource instance: the registry is resolved once per run."""
        if self._registry is None:
            self._registry = ModelRegistry(self.tracking_uri, self.model_name, self.artifact_root)
        return self._registry
