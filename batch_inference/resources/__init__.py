"""Dagster resources: thin configurable handles on the library's storage and registry."""

from batch_inference.resources.automation import AutomationResource
from batch_inference.resources.lake import LakeResource
from batch_inference.resources.observability import ObservabilityResource
from batch_inference.resources.quality import QualityResource
from batch_inference.resources.registry import ModelRegistryResource
from batch_inference.resources.warehouse import WarehouseResource

__all__ = ["AutomationResource", "LakeResource", "ModelRegistryResource", "ObservabilityResource", "QualityResource", "WarehouseResource"]
