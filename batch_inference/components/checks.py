"""Per-partition asset checks on every hand-off: schema, completeness, drift, model version.

Each check reads the committed partition (so it can be re-run alone from the UI) and calls the
quality library. All are blocking: an ERROR stops the publish of that partition, in this run and
in any later one (the serving asset verifies them against the latest materialization).
"""


import contextlib
import dataclasses
import tempfile
import warnings
from collections.abc import Iterator, Mapping

import dagster as dg
import numpy as np
import pyarrow as pa

from batch_inference.components.partition_scope import DayChecks, check_each_day, scope_of
from batch_inference.components.pipeline import QUARANTINE, Pipeline
from batch_inference.failures import runbook_for_check
from batch_inference.ingest import read_landing_ids, write_landing_ids
from batch_inference.lake import Lake
from batch_inference.observability import push_check_metrics
from batch_inference.plugins.loading import load_object
from batch_inference.quality.completeness import (
    CompletenessReport,
    check_completeness,
    check_completeness_files,
    check_volume,
    count_out_of_day,
)
from batch_inference.quality.drift import ALERT, FEATURE, WARN, DriftThresholds, compare, drift_columns
from batch_inference.quality.reference import same_weekday_reference
from batch_inference.quality.schema_validation import validate_parquet
from batch_inference.resources import (
    LakeResource,
    ModelRegistryResource,
    ObservabilityResource,
    QualityResource,
)
from batch_inference.tracing import span

SCHEMA, COMPLETENESS, DRIFT, MODEL_VERSION = "schema", "completeness", "drift", "model_version"


def check_name(p: Pipeline, asset: str, kind: str) -> str:
    return f"{asset}_{kind}"


def prediction_check_names(p: Pipeline) -> list[str]:
    """The blocking checks on the predictions asset, which gate the publish."""
    return [check_name(p, p.spec.scoring.asset, k) for k in (SCHEMA, COMPLETENESS, DRIFT, MODEL_VERSION)]


def _schema_result(schema, store: Lake, asset: str, date: str) -> dg.AssetCheckResult:
    with store.parquet_file(asset, date) as parquet:  # validated row group by row group
        report = validate_parquet(schema, parquet, store.local_path(asset, date))
    metadata = {"rows": report.rows, "schema": schema.Config.name, "failure_count": report.failure_count,
                "failing_columns": ", ".join(report.failing_columns) or "none"}
    if not report.passed:
        metadata["failure_sample"] = dg.MetadataValue.md(report.failure_sample.to_markdown(index=False))
        metadata["runbook"] = runbook_for_check(SCHEMA)
    return dg.AssetCheckResult(passed=report.passed, metadata=metadata)


def schema_check_specs(p: Pipeline, asset: str, schema) -> list[dg.AssetCheckSpec]:
    """The blocking schema check of the input or the features, run by the asset's own step (so a
    ranged step records each day's check right after that day's materialization)."""
    if schema is None:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # partitioned checks are a preview API
        return [dg.AssetCheckSpec(check_name(p, asset, SCHEMA), asset=p.key(asset), blocking=True,
                                  partitions_def=p.partitions_def,
                                  description=f"Rows of `{asset}` match {schema.Config.name} (pandera, lazy).")]


def schema_checks(p: Pipeline, asset: str, schema, lake: LakeResource) -> DayChecks | None:
    """The day's schema check of `asset`, for `partition_scope.materialize`."""
    if schema is None:
        return None
    key = dg.AssetCheckKey(p.key(asset), check_name(p, asset, SCHEMA))
    return lambda day: [(key, _schema_result(schema, p.lake(lake), asset, day))]


def upstream_check_names(p: Pipeline) -> dict[dg.AssetKey, list[str]]:
    """The blocking checks of the input and the features, which the publish honours per day too."""
    names = {}
    if p.rules is not None:  # landing files and upstream-fed inputs alike
        names[p.key(p.spec.input.asset)] = [check_name(p, p.spec.input.asset, SCHEMA)]
    if p.features_schema is not None:
        names[p.key(p.spec.features.asset)] = [check_name(p, p.spec.features.asset, SCHEMA)]
    return names


def _completeness(p: Pipeline, date: str, lake: LakeResource) -> dg.AssetCheckResult:
    store = p.lake(lake)
    by_stage, quarantine_parts, out_of_day = {}, [], 0
    for stage in (p.spec.input.asset, p.spec.scoring.asset):
        part = f"part-{stage}.parquet"
        rows = 0
        if store.exists(QUARANTINE, date, part):
            quarantine_parts.append(part)
            with store.parquet_file(QUARANTINE, date, part) as parquet:
                for group in range(parquet.num_row_groups):  # reasons row group by row group
                    reasons = parquet.read_row_group(group, columns=["reason"]).column("reason")
                    rows += len(reasons)
                    out_of_day += count_out_of_day(reasons)
        by_stage[f"quarantined_at_{stage}"] = rows
    if store.is_local and (p.upstream_key is None or p.upstream_lake(lake)[0].is_local):
        report = _completeness_of_files(p, date, lake, store, quarantine_parts)
    else:
        report = _completeness_in_memory(p, date, lake, store, quarantine_parts)
    volume = check_volume(report, out_of_day, p.spec.quality.max_quarantine_share)
    metadata = {
        "landing_rows": report.landing_rows, "scored_rows": report.scored_rows,
        "quarantined_rows": report.quarantined_rows, "duplicate_scored_ids": report.duplicate_scored_ids,
        "unexpected_ids": report.unexpected_ids, "unaccounted_ids": report.unaccounted_ids, **by_stage,
        "out_of_day_rows": volume.out_of_day_rows, "quarantine_share": round(volume.quarantine_share, 5),
        "max_quarantine_share": volume.max_quarantine_share, "volume": volume.message,
    }
    if not (report.passed and volume.passed):
        metadata["runbook"] = runbook_for_check(COMPLETENESS)
    return dg.AssetCheckResult(passed=report.passed and volume.passed, metadata=metadata)


def _completeness_of_files(p: Pipeline, date: str, lake: LakeResource, store: Lake,
                           quarantine_parts: list[str]) -> CompletenessReport:
    """Completeness by DuckDB over the partition files themselves: memory does not grow with the day."""
    key = p.spec.input.key
    with tempfile.TemporaryDirectory(prefix="bi-completeness-") as tmp:
        if p.upstream_key is None:
            fs, _ = lake.landing()
            landing_ids = write_landing_ids(fs, lake.landing_path(p.spec.input.landing_entity, date), key,
                                            f"{tmp}/landing-ids.parquet")
            landing = [(landing_ids, "record_id")]
        else:
            upstream, asset = p.upstream_lake(lake)  # every upstream row is scored or quarantined
            landing = [(upstream.partition_file(asset, date), key)]
        return check_completeness_files(
            landing, [(store.partition_file(p.spec.scoring.asset, date), p.row_key)],
            [(store.partition_file(QUARANTINE, date, part), "record_id") for part in quarantine_parts])


def _completeness_in_memory(p: Pipeline, date: str, lake: LakeResource, store: Lake,
                            quarantine_parts: list[str]) -> CompletenessReport:
    """Completeness of ids read into memory (a lake on S3)."""
    quarantined = [store.read(QUARANTINE, date, ["record_id"], part=part).column("record_id").combine_chunks()
                   for part in quarantine_parts] or [pa.array([], pa.string())]
    if p.upstream_key is None:
        fs, _ = lake.landing()
        landing = read_landing_ids(fs, lake.landing_path(p.spec.input.landing_entity, date), p.spec.input.key)
    else:
        upstream, asset = p.upstream_lake(lake)  # every upstream row is scored or quarantined
        key = p.spec.input.key
        landing = upstream.read(asset, date, [key]).column(key).cast(pa.string())
    return check_completeness(landing, store.read(p.spec.scoring.asset, date, [p.row_key]).column(p.row_key),
                              pa.concat_arrays(quarantined))


def _thresholds(p: Pipeline, quality: QualityResource) -> DriftThresholds:
    """The pipeline's bands, with any value the `quality` resource sets for this run instead."""
    overrides = {k: getattr(quality, k) for k in ("psi_warn", "psi_alert", "ks_warn", "ks_alert")
                 if getattr(quality, k) is not None}
    return dataclasses.replace(p.spec.quality.thresholds, **overrides)


def distribution_drift(p: Pipeline, reference: dict, store, date: str, thresholds: DriftThresholds,
                       drift_features: int) -> tuple[str, dict]:
    """Drift of the outputs and of the critical, configured and most important features, per column
    (`quality/drift.py`): only the outputs and critical features block; the others warn, named."""
    settings, pred, feat = p.spec.quality.features, p.spec.scoring.asset, p.spec.features.asset
    present = store.schema(feat, date).names
    outputs, inputs, unknown = drift_columns(reference, [f.name for f in p.head.fields()], present, settings,
                                             drift_features)
    reference = dict(reference)
    for name in outputs + inputs:  # seasonal features: the same weekday of the last weeks, from the lake
        if name in settings and settings[name].reference == "same_weekday":
            reference[name] = same_weekday_reference(store, pred if name in outputs else feat, name, date,
                                                     settings[name].weeks, reference.get(name))
    # One column in memory at a time, read when compared: the day's width does not add up.
    current = ColumnsOnDemand(store, {**{n: pred for n in outputs}, **{n: feat for n in inputs}}, date)
    report = compare(reference, current, thresholds, outputs=outputs, settings=settings)
    if unknown:
        report.problem = (f"quality.features of pipeline {p.name} names {', '.join(unknown)}: not a column of "
                          f"`{feat}` on {date}, nor an output")
    worst = max(report.features, key=lambda f: f.psi, default=None)
    blocking = [f.psi for f in report.features if f.role != FEATURE and f.checked]
    return report.status, {
        "features_checked": report.features_checked,
        "max_psi": round(worst.psi, 5) if worst else 0.0,
        "max_psi_feature": worst.name if worst else "",
        "blocking_max_psi": round(max(blocking, default=0.0), 5),
        "blocking_columns": ", ".join(report.flagged(ALERT)) or "none",
        "warned_features": ", ".join(report.flagged(WARN)) or "none",
        "psi_alert_threshold": thresholds.psi_alert,
        "rows": report.rows,
        "drift_table": dg.MetadataValue.md(report.as_markdown()),
        "reason": report.reason,
    }


class ColumnsOnDemand(Mapping[str, np.ndarray]):
    """Numeric columns of partitions as float64 arrays, each read from its file when asked for and not
    kept: drift statistics see one column at a time, whatever the number of rows."""

    def __init__(self, store: Lake, assets: dict[str, str], date: str) -> None:
        self.store, self.assets, self.date = store, assets, date  # column -> the asset holding it

    def __getitem__(self, name: str) -> np.ndarray:
        column = self.store.read(self.assets[name], self.date, [name]).column(name)
        return column.to_numpy().astype(np.float64)

    def __iter__(self) -> Iterator[str]:
        return iter(self.assets)

    def __len__(self) -> int:
        return len(self.assets)


def _drift(p: Pipeline, date: str, lake: LakeResource, model_registry: ModelRegistryResource,
           quality: QualityResource) -> dg.AssetCheckResult:
    store = p.lake(lake)
    versions = store.distinct(p.spec.scoring.asset, date, "model_version")
    if not versions:
        return dg.AssetCheckResult(passed=True, metadata={"status": "insufficient_sample", "rows": 0})
    registry = p.registry(model_registry)
    loaded = registry.load(registry.version(versions[0]))
    thresholds = _thresholds(p, quality)
    drift_features = quality.drift_features if quality.drift_features is not None else p.spec.quality.drift_features
    if p.spec.quality.drift_check:
        status, metadata = load_object(p.spec.quality.drift_check)(p, loaded.reference, store, date, thresholds,
                                                           **p.spec.quality.drift_params)
    else:
        status, metadata = distribution_drift(p, loaded.reference, store, date, thresholds, drift_features)
    metadata = {"status": status, "reference_model_version": loaded.ref.version, **metadata}
    if status in (WARN, ALERT):
        metadata["runbook"] = runbook_for_check(DRIFT)
    return dg.AssetCheckResult(
        passed=status not in (WARN, ALERT),
        severity=dg.AssetCheckSeverity.ERROR if status == ALERT else dg.AssetCheckSeverity.WARN,
        metadata=metadata)


def _model_version(p: Pipeline, date: str, context, lake: LakeResource,
                   model_registry: ModelRegistryResource) -> dg.AssetCheckResult:
    found = sorted(p.lake(lake).distinct(p.spec.scoring.asset, date, "model_version"))
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=p.key(p.spec.scoring.asset), asset_partitions=[date]), limit=1).records
    expected = None
    if records:
        meta = records[0].asset_materialization.metadata
        expected = meta["model_version"].value if "model_version" in meta else None
    champion = p.registry(model_registry).champion()
    passed = expected is not None and found in ([str(expected)], [])
    metadata = {"expected_model_version": str(expected), "found_model_versions": ", ".join(found) or "none",
                "champion_now": champion.version if champion else "none"}
    if not passed:
        metadata["runbook"] = runbook_for_check(MODEL_VERSION)
    return dg.AssetCheckResult(passed=passed, metadata=metadata)


def build_checks(p: Pipeline) -> list[dg.AssetChecksDefinition]:
    """The four checks on the predictions, in one step (the input's and features' schema checks run
    in those assets' steps: `schema_check_specs`)."""
    pred = p.spec.scoring.asset
    descriptions = {
        SCHEMA: f"Output rows match {p.predictions_schema.Config.name if p.predictions_schema else 'the head'}"
                " with provenance and a unique record_id (pandera).",
        COMPLETENESS: "Every landing row is scored or quarantined, none twice; counts per stage in metadata.",
        DRIFT: "Drift of the outputs and the most important inputs against the reference recorded with the "
               "model version (or a feature's same weekday): ERROR when the output or a critical feature moves, "
               "WARN naming any other feature that moves; a small day is tested at its size and warns at most.",
        MODEL_VERSION: f"Every row was scored by the version `{p.spec.registered_model.alias}` named when the run "
        "started.",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        # Upstream-fed pipelines: requested with the predictions by declarative automation (same run).
        automation = dg.AutomationCondition.any_deps_updated() if p.upstream_key is not None else None
        specs = [dg.AssetCheckSpec(check_name(p, pred, kind), asset=p.key(pred), description=text, blocking=True,
                                   partitions_def=p.partitions_def, automation_condition=automation)
                 for kind, text in descriptions.items()]

    @dg.multi_asset_check(specs=specs, can_subset=True, name=f"{p.name}__{pred}_checks")
    def _prediction_checks(context: dg.AssetCheckExecutionContext, lake: LakeResource,
                           model_registry: ModelRegistryResource, quality: QualityResource,
                           observability: ObservabilityResource):
        """The four checks on the predictions in one step (one pod in production), each selectable alone;
        in a ranged run, every check of every day is recorded for its day (partition_scope)."""
        def day_checks(date: str) -> list[tuple[dg.AssetCheckKey, dg.AssetCheckResult]]:
            with span("checks", pipeline=p.name, partition=date, asset=pred):
                results = [(key, _evaluate(key, context, date, lake, model_registry, quality))
                           for key in context.selected_asset_check_keys]
            _push_checks(observability, [r for _, r in results])
            return results

        yield from check_each_day(context, scope_of(context), day_checks, gated_by=p.key(p.spec.serving.asset))

    def _evaluate(key, context, date, lake, model_registry, quality) -> dg.AssetCheckResult:
        kind = key.name.removeprefix(f"{pred}_")
        if kind == SCHEMA:
            result = (_schema_result(p.predictions_schema, p.lake(lake), pred, date)
                      if p.predictions_schema is not None else dg.AssetCheckResult(passed=True))
        elif kind == COMPLETENESS:
            result = _completeness(p, date, lake)
        elif kind == DRIFT:
            result = _drift(p, date, lake, model_registry, quality)
        else:
            result = _model_version(p, date, context, lake, model_registry)
        return dg.AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=result.passed,
                                   severity=result.severity, metadata=result.metadata)

    def _push_checks(observability: ObservabilityResource, results: list[dg.AssetCheckResult]) -> None:
        if not observability.pushgateway_url:
            return
        failed = [r for r in results if not r.passed and r.severity == dg.AssetCheckSeverity.ERROR]
        values = {"checks_failed": len(failed)}
        for r in results:
            meta = r.metadata or {}
            if r.check_name.endswith(DRIFT) and "blocking_max_psi" in meta:  # the columns that block (F5)
                values["drift_max_psi"] = float(getattr(meta["blocking_max_psi"], "value", meta["blocking_max_psi"]))
            if r.check_name.endswith(MODEL_VERSION):
                values["model_version_mismatch"] = 0 if r.passed else 1
        with contextlib.suppress(OSError):  # metrics never fail a check
            push_check_metrics(observability.pushgateway_url, pred, values, pipeline=p.name)

    return [_prediction_checks]
