"""A pipeline for the asset builders: its YAML model plus names, partitions and resolved plug-ins.

The component's resolved YAML model (`BatchScoring`, in `spec`) is the only description of a
pipeline: builders read `p.spec.input.key`, `p.spec.scoring.adapter` and so on. This object adds
only what is derived from it: asset keys, the partitions and backfill policy (with their settings
overrides), and the plug-ins, imported once and cached. No platform module names an example
column, asset or model.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pyarrow as pa

from batch_inference.components.load_validation import Locator, PipelineConfigError, find_problems
from batch_inference.features import FeatureFn, sql_features
from batch_inference.k8s import GPU_STEP_K8S_CONFIG, merge_k8s_config
from batch_inference.lake import Lake, lake_of_key
from batch_inference.modeling.registry import ModelRegistry
from batch_inference.plugins.loading import PluginError, check_protocol, load_object
from batch_inference.plugins.protocols import InputAdapter, ModelFormat, OutputHead
from batch_inference.settings import Settings, load_settings
from batch_inference.validation import validate_identifier

if TYPE_CHECKING:
    from batch_inference.components.batch_scoring import BatchScoring

QUARANTINE = "quarantine"
LEDGER = "ledger"


@dataclass
class Pipeline:
    """One pipeline instance: `spec` (its YAML model) and `root` (its defs folder)."""

    spec: BatchScoring
    root: Path  # relative files of the YAML (the feature SQL) resolve here
    settings: Settings = field(default_factory=load_settings)

    def __post_init__(self) -> None:
        spec = self.spec
        for where, name in (("name", spec.name), ("input.asset", spec.input.asset),
                            ("features.asset", spec.features.asset), ("scoring.asset", spec.scoring.asset),
                            ("serving.asset", spec.serving.asset)):
            validate_identifier(name, where)  # the YAML model checks them first, with file and line
        if not 0.0 <= spec.quality.max_quarantine_share <= 1.0:
            raise ValueError(f"{spec.name}: quality.max_quarantine_share must lie in [0, 1], "
                             f"got {spec.quality.max_quarantine_share}")
        if spec.input.upstream_asset:
            parts = dg.AssetKey.from_user_string(spec.input.upstream_asset).path
            if len(parts) < 2:
                raise ValueError(f"{spec.name}: input.upstream_asset {spec.input.upstream_asset!r} needs at least "
                                 "two key parts (`<folder>/<asset>`): the lake folder and the asset")
            for part in parts:
                validate_identifier(part)
        self.partitions_def = dg.DailyPartitionsDefinition(start_date=self.partitions_start, end_offset=0)

    # -- names ---------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The pipeline's name: asset key prefix, group and lake folder."""
        return self.spec.name

    @property
    def group(self) -> str:
        return self.spec.name

    def key(self, asset: str) -> dg.AssetKey:
        """`<pipeline>/<asset>`: every asset key carries the pipeline's name."""
        return dg.AssetKey([self.spec.name, asset])

    @property
    def upstream_key(self) -> dg.AssetKey | None:
        """The upstream asset the input is read from, or None (landing files)."""
        upstream = self.spec.input.upstream_asset
        return dg.AssetKey.from_user_string(upstream) if upstream else None

    @property
    def input_key(self) -> dg.AssetKey:
        """The pipeline's own validated input (`<pipeline>/<input.asset>`), also when upstream-fed."""
        return self.key(self.spec.input.asset)

    def upstream_lake(self, lake_resource) -> tuple[Lake, str]:
        """Where the upstream asset's partitions sit: the lake folder of every key part but the last, and
        the last part as the asset (`a/b/name` -> `<lake>/a/b/name/date=D/part-0.parquet`)."""
        return lake_of_key(lake_resource.lake_uri, self.upstream_key.path)

    @property
    def row_key(self) -> str:
        """The key column of the features, the predictions and the checkpoints (`features.key`,
        default `input.key`)."""
        return self.spec.features.key or self.spec.input.key

    # -- partitions ------------------------------------------------------------------------------

    @property
    def partitions_start(self) -> str:
        """The YAML's first day, unless the `partitions_start` setting overrides it for every pipeline."""
        return self.settings.partitions_start or self.spec.partitions_start

    @property
    def backfill_policy(self) -> dg.BackfillPolicy:
        """Backfills in ranged runs of up to N partitions (model loaded once per run, checks per
        partition); the `partitions_per_run` setting overrides N for every pipeline (1 = one run each)."""
        n = self.settings.partitions_per_run or self.spec.backfill.partitions_per_run
        return dg.BackfillPolicy.multi_run(max(1, n))

    @property
    def gpu_k8s_config(self) -> dict:
        """The scoring step's `dagster-k8s/config`: the default GPU step with the YAML's `k8s_config` over it."""
        return merge_k8s_config(copy.deepcopy(GPU_STEP_K8S_CONFIG), self.spec.scoring.k8s_config)

    def lake(self, lake_resource) -> Lake:
        return lake_resource.lake(self.spec.name)

    # -- plug-ins (resolved lazily: importing torch is the scoring step's business) ---------------

    @functools.cached_property
    def arrow_schema(self) -> pa.Schema | None:
        path = self.spec.input.arrow_schema
        if path is None:
            return None
        schema = load_object(path)
        if not isinstance(schema, pa.Schema):
            raise PluginError(f"{path!r} is not a pyarrow Schema")
        return schema

    @functools.cached_property
    def rules(self):
        return _load_optional(self.spec.input.rules)

    @functools.cached_property
    def features_schema(self):
        return _load_optional(self.spec.features.pandera_schema)

    @functools.cached_property
    def predictions_schema(self):
        return _load_optional(self.spec.scoring.pandera_schema)

    @functools.cached_property
    def feature_sql(self) -> str | None:
        """The text of the features' SQL file, or None for a Python callable."""
        return (self.root / self.spec.features.sql).read_text() if self.spec.features.sql else None

    @functools.cached_property
    def feature_fn(self) -> FeatureFn:
        features = self.spec.features
        if features.sql:
            return sql_features(self.feature_sql, key=self.row_key)
        if features.callable:
            return load_object(features.callable)
        raise PluginError(f"pipeline {self.name}: features needs `sql` or `callable`")

    @functools.cached_property
    def model_format(self) -> ModelFormat:
        path = self.spec.registered_model.format
        return check_protocol(load_object(path)(), ModelFormat, path)

    def registry(self, registry_resource) -> ModelRegistry:
        fmt, model = self.model_format, self.spec.registered_model
        return registry_resource.registry(model.registered_name, {fmt.tag: fmt}, model.alias)

    def adapter(self, loaded) -> InputAdapter:
        path, params = self.spec.scoring.adapter, self.spec.scoring.adapter_params
        cls = load_object(path)
        adapter = cls.from_model(loaded.artifact, **params) if hasattr(cls, "from_model") else cls(**params)
        return check_protocol(adapter, InputAdapter, path)

    @functools.cached_property
    def head(self) -> OutputHead:
        path = self.spec.scoring.head
        return check_protocol(load_object(path)(**self.spec.scoring.head_params), OutputHead, path)

    @functools.cached_property
    def builder(self):
        return _load_optional(self.spec.registered_model.builder)

    def validate(self, locate: Locator | None = None) -> None:
        """Check everything that can be checked before a run (see `load_validation`): plug-ins, the
        SQL file, the feature SQL's columns against the adapter, the model's feature list and the
        pandera schemas. Raises `PipelineConfigError` naming file, line (via `locate`) and field."""
        problems = find_problems(self)
        if problems:
            raise PipelineConfigError(self.name, problems, locate)


def _load_optional(path: str | None):
    return load_object(path) if path else None
