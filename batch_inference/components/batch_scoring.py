"""`BatchScoring`: one YAML instance builds a whole checked, partitioned scoring slice.

From a `defs.yaml` it builds the input asset (from landing files or an upstream asset), the
features (a SQL file run by DuckDB, or a callable), the model (built and registered in MLflow,
or registered from outside), the daily predictions, the checks, the serving publish, the jobs,
the landing sensor, the champion sensor with its canary, and a nightly schedule. Asset keys carry
the pipeline's name; the `gpu` pool and the resources are shared by every pipeline.
"""

from __future__ import annotations

from typing import Any, Literal

import dagster as dg
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from batch_inference.components.assets import (
    build_features_asset,
    build_input_asset,
    build_model_asset,
    build_predictions_asset,
    build_serving_asset,
)
from batch_inference.components.automation import (
    build_automation_sensor,
    build_champion_sensor,
    build_jobs,
    build_landing_sensor,
    build_schedule,
)
from batch_inference.components.challenger import build_challenger_asset, build_challenger_check
from batch_inference.components.checks import build_checks, prediction_check_names
from batch_inference.components.load_validation import PipelineConfigError, Problem, tree_locator
from batch_inference.components.performance import (
    build_labels_asset,
    build_performance_asset,
    build_performance_sensor,
)
from batch_inference.components.pipeline import Pipeline
from batch_inference.components.scaffold import BatchScoringScaffolder
from batch_inference.quality.completeness import DEFAULT_MAX_QUARANTINE_SHARE
from batch_inference.quality.drift import DriftThresholds, FeatureSettings
from batch_inference.validation import validate_identifier


def _identifier(cls, value: str) -> str:
    """A name that becomes part of an asset key, a lake path and SQL: checked when the YAML is read,
    so the error carries the file, the line and the field."""
    return validate_identifier(value, "name")


def _optional_identifier(cls, value: str | None) -> str | None:
    """`_identifier`, for a name that may be left out."""
    return None if value is None else validate_identifier(value, "name")


class InputSpec(dg.Model):
    """Where a day's rows come from, their types, and the row rules that quarantine bad rows."""

    asset: str = Field("input", description="Asset name of the validated input (key `<pipeline>/<asset>`).")
    _asset_is_a_name = field_validator("asset")(_identifier)
    landing_entity: str | None = Field(None, description="Landing files `<entity>_YYYY-MM-DD.parquet`; "
                                       "default: the asset name (none for an upstream-fed input).")
    upstream_asset: str | None = Field(None, description="Instead of landing files, a daily-partitioned Dagster "
                                       "asset key `a/b/.../name` (same partitions) whose partitions sit in the "
                                       "lake at `<lake>/a/b/.../name/date=D/part-0.parquet`; its rows get the same "
                                       "conforming, row screen and quarantine, and declarative automation runs "
                                       "the pipeline when it materializes.")
    arrow_schema: str | None = Field(None, description="Import path of the input's pyarrow Schema (strict "
                                     "types): required for landing files, optional for an upstream asset "
                                     "(its rows are conformed to it when set).")
    rules: str | None = Field(None, description="Import path of a pandera DataFrameModel: the schema check and "
                              "the quarantine rules.")
    key: str = Field("record_id", description="The unique row id column of the input; its values are the "
                     "`record_id` of the quarantine and ledger tables.")
    _key_is_a_name = field_validator("key")(_identifier)
    event_time: str | None = Field(None, description="Timestamp column that must fall in the partition's day.")
    event_time_tolerance_hours: float = 0.0
    generator: str | None = Field(None, description="Import path of `write_landing(date, rows, landing_dir, "
                                  "**options)` for the demo and `batch-inference generate`.")

    @model_validator(mode="before")
    @classmethod
    def _default_landing_entity(cls, data: Any) -> Any:
        """The one default of `landing_entity`: the asset name, when the input is landing files; and one
        source only (a `before` validator, so field errors keep their plain `InputSpec.<field>` path)."""
        if not isinstance(data, dict):
            return data
        if data.get("upstream_asset"):
            if data.get("landing_entity"):
                raise ValueError("input: set `upstream_asset` or `landing_entity`, not both")
            return data
        if not data.get("arrow_schema"):
            raise ValueError("input.arrow_schema is required for landing files (the strict types they are read "
                             "with)")
        if not data.get("landing_entity"):
            data = {**data, "landing_entity": data.get("asset", "input")}
        return data


class FeaturesSpec(dg.Model):
    asset: str = "features"
    _asset_is_a_name = field_validator("asset")(_identifier)
    key: str | None = Field(None, description="The row key column the features select and the predictions "
                            "carry; default: `input.key`.")
    _key_is_a_name = field_validator("key")(_optional_identifier)
    sql: str | None = Field(None, description="SQL file (relative to this folder) over the table `input`.")
    callable: str | None = Field(None, description="Import path of `fn(pa.Table) -> pa.Table`.")
    pandera_schema: str | None = Field(None, description="Import path of the features' pandera model.")
    row_group_rows: int = Field(65_536, description="Rows per Parquet row group of the features: the unit of "
                                "checkpointed scoring (smaller for expensive rows such as texts).")


class ModelSpec(dg.Model):
    registered_name: str = Field(..., description="MLflow registered model name.")
    alias: str = "champion"
    format: str = Field(..., description="Import path of the ModelFormat class (a safe loader).")
    builder: str | None = Field(None, description="Import path of `build(TrainingRequest) -> TrainedArtifact`; "
                                "none: versions are registered from outside.")
    params: dict[str, Any] = Field(default_factory=dict)
    training_days: int = 7
    promote: Literal["if_better", "always", "never"] = "if_better"


class ScoringSpec(dg.Model):
    asset: str = "predictions"
    _asset_is_a_name = field_validator("asset")(_identifier)
    adapter: str = Field(..., description="Import path of the input adapter class.")
    adapter_params: dict[str, Any] = Field(default_factory=dict)
    head: str = Field(..., description="Import path of the output head class.")
    head_params: dict[str, Any] = Field(default_factory=dict)
    pandera_schema: str | None = Field(None, description="Import path of the output pandera model.")
    device: str = "auto"
    read_batch_rows: int = 16_384
    forward_rows: int = 8_192
    checkpoint_rows: int = 1_048_576
    k8s_config: dict[str, Any] = Field(default_factory=dict, description="Merged over the default GPU step's "
                                       "`dagster-k8s/config` (resources, node selector, tolerations).")


class QualitySpec(dg.Model):
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    ks_warn: float = 0.1
    ks_alert: float = 0.2
    drift_features: int = 6
    min_sample_rows: int = 500
    max_quarantine_share: float = Field(DEFAULT_MAX_QUARANTINE_SHARE, description="The completeness check blocks "
                                        "a day when a larger share of its landing rows is quarantined (0..1).")
    drift_check: str | None = Field(None, description="Import path of a custom drift check function.")
    drift_params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the custom "
                                         "drift check (e.g. which feature column holds text lengths).")
    features: dict[str, FeatureSettings] = Field(default_factory=dict, description="Per-feature drift settings: "
                                                 "`exclude`, `categorical`, `critical` (its drift blocks the day, "
                                                 "as the output's does), `reference: same_weekday` with `weeks`.")

    @property
    def thresholds(self) -> DriftThresholds:
        """The YAML's drift bands (the `quality` resource may override them per run)."""
        return DriftThresholds(self.psi_warn, self.psi_alert, self.ks_warn, self.ks_alert,
                               min_rows=self.min_sample_rows)


class AutomationSpec(dg.Model):
    rescore_window_days: int = 30
    canary: bool = True
    nightly_hour: int = 2


class ServingSpec(dg.Model):
    asset: str = "serving_predictions"
    _asset_is_a_name = field_validator("asset")(_identifier)


class BackfillSpec(dg.Model):
    partitions_per_run: int = Field(30, description="Ranged backfill runs: at most this many partitions per run "
                                    "(`BackfillPolicy.multi_run`); 1 = one run per partition.")


class PromotionSpec(dg.Model):
    """The promotion gate: `champion` moves only to a version that passed the evaluation-set comparison
    and `shadow_partitions` consecutive shadow partitions as `challenger` (or carries the override tag)."""

    enabled: bool = Field(False, description="Gate every move of the alias; off: the alias moves as it is told.")
    shadow_partitions: int = Field(3, description="K: consecutive passing shadow partitions before promotion.")
    challenger_alias: str = "challenger"
    evaluation_fraction: float = Field(0.1, description="Share of the first training window's rows held out as "
                                       "the fixed evaluation set (never trained on).")
    output_kind: Literal["scores", "embeddings", "regression"] = "scores"
    output_column: str = Field("score", description="The head's output column compared between versions.")
    threshold: float = Field(0.5, description="The operating threshold of a score (decision flips, precision).")
    comparison: dict[str, float] = Field(default_factory=dict, description="Overrides of ComparisonThresholds "
                                         "(min_rank_correlation, max_flip_rate, max_psi, min_mean_cosine, ...).")


class LabelsSpec(dg.Model):
    """Labels that arrive late as their own landing entity (key, label, time the label became known)."""

    asset: str = "labels"
    landing_entity: str = Field(..., description="Landing files `<entity>_YYYY-MM-DD.parquet`, by the day the "
                                "labels became known.")
    arrow_schema: str = Field(..., description="Import path of the labels file's pyarrow Schema.")
    key: str = "record_id"
    label: str = "label"
    labelled_at: str = "labelled_at"
    max_delay_days: int = Field(30, description="Labels of day D arrive by D + this many days.")
    performance_asset: str = "performance"
    performance_margin: float = Field(0.05, description="The performance check fails when realized AUC / PR-AUC "
                                      "fall below the version's evaluation-set figure by more than this.")
    min_labelled_rows: int = Field(200, description="Below this many labelled rows a day is not judged yet.")


@dg.scaffold_with(BatchScoringScaffolder)
class BatchScoring(dg.Component, dg.Model, dg.Resolvable):
    """A checked, daily-partitioned batch scoring pipeline on the platform."""

    name: str = Field(..., description="Pipeline name: the asset key prefix, group and lake folder.")
    _name_is_a_name = field_validator("name")(_identifier)
    description: str = ""
    partitions_start: str = "2025-01-01"
    demo_rows_per_day: int | None = Field(None, description="Rows a day `make demo` generates for this "
                                          "pipeline; default: DEMO_ROWS_PER_DAY, else 100000.")
    input: InputSpec
    features: FeaturesSpec
    registered_model: ModelSpec
    scoring: ScoringSpec
    quality: QualitySpec = Field(default_factory=QualitySpec)
    automation: AutomationSpec = Field(default_factory=AutomationSpec)
    serving: ServingSpec = Field(default_factory=ServingSpec)
    backfill: BackfillSpec = Field(default_factory=BackfillSpec)
    promotion: PromotionSpec = Field(default_factory=PromotionSpec)
    labels: LabelsSpec | None = None

    _yaml_tree: Any = PrivateAttr(None)  # where each field sits in its defs.yaml, kept from `load`

    @classmethod
    def load(cls, attributes: Any, context: dg.ComponentLoadContext) -> BatchScoring:
        """Load as usual, keeping the YAML's source positions so load-time errors name file and line."""
        tree = context.resolution_context.source_position_tree
        try:
            component = super().load(attributes, context)
        except ValidationError as exc:  # the model's own validators (e.g. the pipeline name)
            problems = [Problem(tuple(error["loc"]), error["msg"]) for error in exc.errors()]
            raise PipelineConfigError(str(getattr(attributes, "name", "?")), problems,
                                      tree_locator(tree) if tree is not None else None) from None
        component._yaml_tree = tree
        return component

    def pipeline(self, context: dg.ComponentLoadContext) -> Pipeline:
        """This model, with its folder: what the builders read (names, partitions, plug-ins)."""
        return Pipeline(self, context.path)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        p = self.pipeline(context)
        self.validate_at_load(p, context)
        jobs = build_jobs(p)
        assets: list = [build_input_asset(p), build_features_asset(p), build_model_asset(p),
                        build_predictions_asset(p), build_serving_asset(p, prediction_check_names(p))]
        sensors = [build_champion_sensor(p, jobs["score"])]
        sensors.insert(0, build_landing_sensor(p, jobs["daily"]) if p.upstream_key is None
                       else build_automation_sensor(p))
        checks = build_checks(p)
        if p.spec.promotion.enabled:  # the challenger in shadow and its comparison with the champion
            assets.append(build_challenger_asset(p))
            checks.append(build_challenger_check(p))
        if p.spec.labels is not None:  # late labels and realized performance
            assets += [build_labels_asset(p), build_performance_asset(p)]
            sensors += [build_landing_sensor(p, jobs["labels"], p.spec.labels.landing_entity,
                                             f"{p.name}_labels_sensor"), build_performance_sensor(p)]
        return dg.Definitions(assets=assets, asset_checks=checks, jobs=list(jobs.values()),
                              sensors=sensors, schedules=[build_schedule(p, jobs["daily"])])

    def validate_at_load(self, p: Pipeline, context: dg.ComponentLoadContext) -> None:
        """Every mistake of this instance found now, before any run, each named by file, line and
        field (`load_validation`), plus a pipeline name declared in another `defs.yaml` too."""
        from batch_inference.pipelines import declared_pipelines

        tree = self._yaml_tree
        locate = tree_locator(tree) if tree is not None else None
        here = tree.position.filename if tree is not None else None
        declared = declared_pipelines(context.defs_module_path).get(self.name, [])
        # Built from YAML: any other file naming this pipeline. Built in Python: the name in two files.
        others = [f"{file}:{line}" for file, line in declared if here is None or str(file) != str(here)]
        if here is None and len(others) < 2:
            others = []
        try:
            p.validate(locate)
        except PipelineConfigError as exc:
            problems = exc.problems
        else:
            problems = []
        if others:
            problems.append(Problem(("name",), f"pipeline name {self.name!r} is also declared in "
                                    f"{', '.join(others)}"))
        if problems:
            raise PipelineConfigError(self.name, problems, locate)
