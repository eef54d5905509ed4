"""The MLflow model registry as a Dagster resource, shared by every pipeline."""

from collections.abc import Mapping

import dagster as dg
from pydantic import PrivateAttr

from batch_inference.modeling.registry import DEFAULT_ALIAS, ModelRegistry


class ModelRegistryResource(dg.ConfigurableResource):
    """The MLflow tracking/registry URI; each pipeline names its own registered model and alias."""

    tracking_uri: str
    artifact_root: str | None = None
    _registries: dict = PrivateAttr(default_factory=dict)

    def registry(self, model_name: str, formats: Mapping | None = None, alias: str = DEFAULT_ALIAS) -> ModelRegistry:
        """One client per model name and alias for the life of the resource (one run)."""
        key = (model_name, alias)
        if key not in self._registries:
            self._registries[key] = ModelRegistry(self.tracking_uri, model_name, self.artifact_root,
                                                  formats=formats, alias=alias)
        registry = self._registries[key]
        if formats:
            registry.formats.update(formats)
        return registry
