"""A pipeline resolved from its YAML: names, partitions and plug-ins, for the asset builders.

Plain Python on top of Dagster types: the builders in this package read everything about a
pipeline from here, so no platform module names an example column, asset or model.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from batch_inference.features import FeatureFn, sql_features
from batch_inference.lake import Lake
from batch_inference.modeling.registry import ModelRegistry
from batch_inference.plugins.loading import PluginError, check_protocol, load_object, locate
from batch_inference.plugins.protocols import InputAdapter, ModelFormat, OutputHead
from batch_inference.quality.completeness import DEFAULT_MAX_QUARANTINE_SHARE
from batch_inference.quality.drift import DriftThresholds
from batch_inference.validation import validate_identifier

QUARANTINE = "quarantine"
LEDGER = "ledger"


@dataclass
class Pipeline:
    """Everything the builders need to know about one pipeline instance."""

    name: str
    description: str
    partitions_start: str
    root: Path  # the pipeline's defs folder (relative files in its YAML resolve here)
    input_asset: str
    landing_entity: str | None
    upstream_asset: dg.AssetKey | None
    arrow_schema_path: str
    rules_path: str | None
    key_column: str
    event_time_column: str | None
    event_time_tolerance: dt.timedelta
    generator_path: str | None
    features_asset: str
    features_sql: str | None
    features_callable_path: str | None
    features_schema_path: str | None
    features_row_group_rows: int
    model_name: str
    model_alias: str
    format_path: str
    builder_path: str | None
    model_params: dict[str, Any]
    training_days: int
    promote: str
    predictions_asset: str
    adapter_path: str
    adapter_params: dict[str, Any]
    head_path: str
    head_params: dict[str, Any]
    predictions_schema_path: str | None
    device: str
    read_batch_rows: int
    forward_rows: int
    checkpoint_rows: int
    gpu_k8s_config: dict[str, Any]
    drift: DriftThresholds  # the YAML's bands; the `quality` resource may override them per run
    drift_features: int
    drift_check_path: str | None
    drift_params: dict[str, Any]
    rescore_window_days: int
    canary: bool
    nightly_hour: int
    serving_asset: str
    partitions_per_run: int = 1
    max_quarantine_share: float = DEFAULT_MAX_QUARANTINE_SHARE  # the volume gate of the completeness check
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_identifier(self.name)
        for asset in (self.input_asset, self.features_asset, self.predictions_asset, self.serving_asset):
            validate_identifier(asset)
        if not 0.0 <= self.max_quarantine_share <= 1.0:
            raise ValueError(f"{self.name}: quality.max_quarantine_share must lie in [0, 1], "
                             f"got {self.max_quarantine_share}")
        if self.landing_entity is None and self.upstream_asset is None:
            self.landing_entity = self.input_asset
        self.partitions_def = dg.DailyPartitionsDefinition(start_date=self.partitions_start, end_offset=0)

    # -- names ---------------------------------------------------------------------------------

    def key(self, asset: str) -> dg.AssetKey:
        """`<pipeline>/<asset>`: every asset key carries the pipeline's name."""
        return dg.AssetKey([self.name, asset])

    @property
    def input_key(self) -> dg.AssetKey:
        return self.upstream_asset or self.key(self.input_asset)

    @property
    def backfill_policy(self) -> dg.BackfillPolicy:
        """Backfills in ranged runs of up to N partitions (model loaded once per run, checks per
        partition); BATCH_INFERENCE_PARTITIONS_PER_RUN overrides N for every pipeline (1 = one run each)."""
        import os

        n = int(os.environ.get("BATCH_INFERENCE_PARTITIONS_PER_RUN") or self.partitions_per_run)
        return dg.BackfillPolicy.multi_run(max(1, n))

    @property
    def group(self) -> str:
        return self.name

    def lake(self, lake_resource) -> Lake:
        return lake_resource.lake(self.name)

    # -- plug-ins (resolved lazily: importing torch is the scoring step's business) ---------------

    @functools.cached_property
    def arrow_schema(self) -> pa.Schema:
        schema = load_object(self.arrow_schema_path)
        if not isinstance(schema, pa.Schema):
            raise PluginError(f"{self.arrow_schema_path!r} is not a pyarrow Schema")
        return schema

    @functools.cached_property
    def rules(self):
        return load_object(self.rules_path) if self.rules_path else None

    @functools.cached_property
    def features_schema(self):
        return load_object(self.features_schema_path) if self.features_schema_path else None

    @functools.cached_property
    def predictions_schema(self):
        return load_object(self.predictions_schema_path) if self.predictions_schema_path else None

    @functools.cached_property
    def feature_fn(self) -> FeatureFn:
        if self.features_sql:
            return sql_features((self.root / self.features_sql).read_text())
        if self.features_callable_path:
            return load_object(self.features_callable_path)
        raise PluginError(f"pipeline {self.name}: features needs `sql` or `callable`")

    @functools.cached_property
    def model_format(self) -> ModelFormat:
        fmt = load_object(self.format_path)()
        return check_protocol(fmt, ModelFormat, self.format_path)

    def registry(self, registry_resource) -> ModelRegistry:
        fmt = self.model_format
        return registry_resource.registry(self.model_name, {fmt.tag: fmt}, self.model_alias)

    def adapter(self, loaded) -> InputAdapter:
        cls = load_object(self.adapter_path)
        adapter = cls.from_model(loaded.artifact, **self.adapter_params) if hasattr(cls, "from_model") \
            else cls(**self.adapter_params)
        return check_protocol(adapter, InputAdapter, self.adapter_path)

    @functools.cached_property
    def head(self) -> OutputHead:
        return check_protocol(load_object(self.head_path)(**self.head_params), OutputHead, self.head_path)

    @functools.cached_property
    def builder(self):
        return load_object(self.builder_path) if self.builder_path else None

    def validate(self) -> None:
        """Resolve the light plug-ins now, so a bad YAML fails when definitions load; the heavy ones
        (model format, adapter, builder: they import torch) are only located, not imported."""
        _ = self.arrow_schema, self.rules, self.features_schema, self.predictions_schema, self.feature_fn
        _ = self.head
        for path in (self.format_path, self.adapter_path, self.builder_path, self.generator_path,
                     self.drift_check_path):
            if path:
                locate(path)
