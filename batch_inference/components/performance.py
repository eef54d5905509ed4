"""Late labels and realized performance: the labels asset (by the day labels became known), and a
daily performance asset (by the day scored) re-materialized by declarative automation as labels for
that day accumulate, with a check against the version's evaluation-set figures."""


import datetime as dt

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batch_inference.components.errors import TRANSIENT_RETRIES, classified_errors
from batch_inference.components.pipeline import Pipeline
from batch_inference.failures import RUNBOOKS
from batch_inference.ingest import BadInputFileError, read_landing_file
from batch_inference.modeling.promotion import PASSED, GateState
from batch_inference.plugins.loading import load_object
from batch_inference.quality.labels import latest_labels
from batch_inference.quality.performance import judge, measure
from batch_inference.resources import LakeResource, ModelRegistryResource
from batch_inference.validation import validate_partition_key

PERFORMANCE_CHECK = "vs_evaluation_set"


def has_labels(p: Pipeline) -> bool:
    return p.spec.labels is not None


def labels_key(p: Pipeline) -> dg.AssetKey:
    return p.key(p.spec.labels.asset)


def performance_key(p: Pipeline) -> dg.AssetKey:
    return p.key(p.spec.labels.performance_asset)


def read_labels(p: Pipeline, lake: LakeResource, first: str, last: str) -> pa.Table | None:
    """Every label known in the lake for rows of days `first`..`last` (read from the arrival days
    `first`..`last` + max_delay_days that exist), as (row key, `label`, `labelled_at`)."""
    spec = p.spec.labels
    store = p.lake(lake)
    end = (dt.date.fromisoformat(last) + dt.timedelta(days=spec.max_delay_days)).isoformat()
    days = [d for d in store.dates(spec.asset) if first <= d <= end]
    tables = [store.read(spec.asset, d, [spec.key, spec.label, spec.labelled_at]) for d in days]
    if not tables:
        return None
    return pa.concat_tables(tables).rename_columns([p.row_key, "label", "labelled_at"])


def build_labels_asset(p: Pipeline) -> dg.AssetsDefinition:
    spec = p.spec.labels

    @dg.asset(key=labels_key(p), partitions_def=p.partitions_def, kinds={"parquet"}, group_name=p.group,
              code_version="1", retry_policy=TRANSIENT_RETRIES, backfill_policy=dg.BackfillPolicy.single_run(),
              description=f"Labels that became known on the day (`{spec.landing_entity}_YYYY-MM-DD.parquet`: "
              f"`{spec.key}`, `{spec.label}`, `{spec.labelled_at}`), for rows scored up to "
              f"{spec.max_delay_days} days before. Never part of the scoring input.")
    def _labels(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        dates = [validate_partition_key(k) for k in context.partition_keys]
        figures = {date: _land_labels(p, lake, date) for date in dates}
        if len(dates) == 1:
            return dg.MaterializeResult(metadata=figures[dates[0]])
        for date, metadata in figures.items():
            context.add_asset_metadata(metadata, partition_key=date)
        return dg.MaterializeResult()

    return _labels


def _land_labels(p: Pipeline, lake: LakeResource, date: str) -> dict:
    spec = p.spec.labels
    fs, root = lake.landing()
    path = lake.landing_path(spec.landing_entity, date)
    with classified_errors():
        table = read_landing_file(fs, path, load_object(spec.arrow_schema), root=root)
        for column in (spec.key, spec.label, spec.labelled_at):
            nulls = table.column(column).null_count
            if nulls:
                raise BadInputFileError(f"labels file {path}: {nulls} null value(s) in column {column!r}")
        known = pc.strftime(table.column(spec.labelled_at), format="%Y-%m-%d").to_pylist()
        wrong = [d for d in known if d != date]
        if wrong:
            raise BadInputFileError(f"labels file {path}: {len(wrong)} label(s) became known on another day "
                                    f"than {date}, e.g. {wrong[0]}")
    uri = p.lake(lake).write(spec.asset, date, table)
    positives = int(pc.sum(table.column(spec.label)).as_py() or 0) if table.num_rows else 0
    return {"rows": table.num_rows, "positives": positives, "landing_file": dg.MetadataValue.path(path),
            "path": dg.MetadataValue.path(uri)}


def performance_condition(p: Pipeline) -> dg.AutomationCondition:
    """Re-materialize day D whenever labels (or the predictions) of D are updated, once the day is scored.

    Label partitions that do not exist yet (the days after D still to come) do not hold D back.
    """
    labels = dg.AssetSelection.assets(labels_key(p))
    scored = ~dg.AutomationCondition.any_deps_match(dg.AutomationCondition.missing()).ignore(labels)
    return (dg.AutomationCondition.any_deps_updated() & scored
            & ~dg.AutomationCondition.any_deps_in_progress() & ~dg.AutomationCondition.in_progress()
            ).with_label("labels or predictions of the day updated")


def build_performance_sensor(p: Pipeline) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the performance asset's condition (running by default, like the landing sensor)."""
    from batch_inference.components.automation import default_status

    return dg.AutomationConditionSensorDefinition(
        f"{p.name}_performance_automation", target=dg.AssetSelection.assets(performance_key(p)),
        default_status=default_status(), minimum_interval_seconds=60,
        description=f"Re-materializes a day of `{performance_key(p).to_user_string()}` when labels of that day arrive.")


def build_performance_asset(p: Pipeline) -> dg.AssetsDefinition:
    spec, promotion = p.spec.labels, p.spec.promotion
    predictions = p.spec.scoring.asset
    mapping = dg.TimeWindowPartitionMapping(start_offset=0, end_offset=spec.max_delay_days, allow_nonexistent_upstream_partitions=True)

    @dg.asset(key=performance_key(p), partitions_def=p.partitions_def, group_name=p.group, kinds={"parquet"},
              code_version="1", automation_condition=performance_condition(p),
              ins={"labels": dg.AssetIn(labels_key(p), partition_mapping=mapping, dagster_type=dg.Nothing),
                   "predictions": dg.AssetIn(p.key(predictions), dagster_type=dg.Nothing)},
              check_specs=[dg.AssetCheckSpec(PERFORMANCE_CHECK, asset=performance_key(p), blocking=False,
                                             description="Realized AUC / PR-AUC no more than the margin below the "
                                             "version's evaluation-set figures (once enough labels are in).")],
              description=f"Realized performance of day D's `{predictions}` against the labels known so far "
              f"(arriving up to {spec.max_delay_days} days later): AUC, PR-AUC, Brier, calibration (ECE), "
              f"precision at {promotion.threshold}, label coverage. Re-materialized as labels of D arrive.")
    def _performance(context: dg.AssetExecutionContext, lake: LakeResource, model_registry: ModelRegistryResource):
        date = validate_partition_key(context.partition_key)
        store = p.lake(lake)
        scored = store.read(predictions, date, [p.row_key, promotion.output_column, "model_version"])
        labels = read_labels(p, lake, date, date)
        known = latest_labels(labels, p.row_key) if labels is not None else None
        joined = scored.join(known, p.row_key, join_type="inner") \
            if known is not None else scored.slice(0, 0).append_column("label", pa.array([], pa.int8()))
        realized = measure(joined.column("label").to_numpy(zero_copy_only=False).astype(np.float64),
                           joined.column(promotion.output_column).to_numpy(zero_copy_only=False).astype(np.float64),
                           promotion.threshold, rows=scored.num_rows)
        versions = sorted(set(scored.column("model_version").to_pylist()))
        expected = _evaluation_figures(p, model_registry, versions[0]) if len(versions) == 1 else {}
        verdict = judge(realized, expected, spec.performance_margin, spec.min_labelled_rows)
        figures = {k: v for k, v in realized.as_dict().items() if v is not None}
        metadata = {**figures, "model_version": ", ".join(versions),
                    **{f"evaluation_set_{k}": round(float(v), 5) for k, v in expected.items()
                       if k in ("auc", "pr_auc") and v is not None}}
        yield dg.MaterializeResult(metadata=metadata)
        yield dg.AssetCheckResult(check_name=PERFORMANCE_CHECK, passed=verdict.passed,
                                  metadata={"reason": verdict.reason, "labelled_rows": realized.labelled_rows,
                                            "label_coverage": round(realized.label_coverage, 4),
                                            "margin": spec.performance_margin,
                                            "runbook": RUNBOOKS["performance_drop"]})

    return _performance


def _evaluation_figures(p: Pipeline, model_registry: ModelRegistryResource, version: str) -> dict:
    """The evaluation-set figures the day's version is held to: its own when it passed the gate; for a
    version promoted around it (override), those of the champion it was compared with and replaced."""
    registry = p.registry(model_registry)
    state = GateState.from_tags(version, registry.version_tags(version))
    if state.evaluation != PASSED and state.compared_with:
        state = GateState.from_tags(state.compared_with, registry.version_tags(state.compared_with))
    return dict(state.figures) if state.evaluation == PASSED else {}
