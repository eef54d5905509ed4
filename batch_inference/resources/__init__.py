"""Dagster resources shared by every pipeline: thin configurable handles on the library."""

from batch_inference.resources.lake import LakeResource
from batch_inference.resources.observability import ObservabilityResource
from batch_inference.resources.quality import QualityResource
from batch_inference.resources.registry import ModelRegistryResource
from batch_inference.resources.warehouse import WarehouseResource

__all__ = ["LakeResource", "ModelRegistryResource", "ObservabilityResource", "QualityResource", "WarehouseResource"]
