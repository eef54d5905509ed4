"""Per-partition asset checks on every hand-off: schema, completeness, drift, model version.

Each check reads the committed partition (so it can be re-run alone from the UI) and calls the
quality library. All are blocking: an ERROR result stops downstream assets of that partition.
"""

import warnings

import dagster as dg
import numpy as np
import pyarrow as pa

from batch_inference.assets.partitions import daily_partitions
from batch_inference.ingest import read_landing_ids
from batch_inference.quality.completeness import check_completeness
from batch_inference.quality.drift import ALERT, OK, compare
from batch_inference.quality.schemas import FeaturesSchema, PredictionsSchema, TransactionsSchema, validate
from batch_inference.resources import LakeResource, ModelRegistryResource, QualityResource
from batch_inference.validation import validate_partition_key

QUARANTINE_STAGES = ("transactions", "predictions")


def quarantine_part(stage: str) -> str:
    """File name of one stage's rejected rows inside `lake/quarantine/date=D/`."""
    return f"part-{stage}.parquet"


def column_schema(schema) -> dict:
    """Definition metadata that shows the pandera model's columns in the UI (via dagster-pandera)."""
    from dagster_pandera import pandera_schema_to_dagster_type

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # the converter is marked beta; its output is stable
        table_schema = pandera_schema_to_dagster_type(schema).metadata["schema"].value
    return {"dagster/column_schema": table_schema, "pandera_schema": schema.Config.name}


def _partitioned_check(asset: str, name: str, description: str):
    """`@asset_check` over the daily partitions, blocking (partitioned checks are a preview API)."""
    def decorate(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.asset_check(asset=asset, name=name, description=description, blocking=True,
                                  partitions_def=daily_partitions)(fn)

    return decorate


def _schema_result(schema, table: pa.Table) -> dg.AssetCheckResult:
    report = validate(schema, table)
    metadata = {"rows": report.rows, "schema": schema.Config.name, "failure_count": report.failure_count,
                "failing_columns": ", ".join(report.failing_columns) or "none"}
    if not report.passed:
        metadata["failure_sample"] = dg.MetadataValue.md(report.failure_sample.to_markdown(index=False))
    return dg.AssetCheckResult(passed=report.passed, metadata=metadata)


@_partitioned_check("transactions", "transactions_schema", "Validated rows match TransactionsSchema (pandera).")
def transactions_schema(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    date = validate_partition_key(context.partition_key)
    return _schema_result(TransactionsSchema, lake.lake().read("transactions", date))


@_partitioned_check("features", "features_schema", "Features are finite float32 with a unique record_id (pandera).")
def features_schema(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    date = validate_partition_key(context.partition_key)
    return _schema_result(FeaturesSchema, lake.lake().read("features", date))


def _predictions_schema(context: dg.AssetCheckExecutionContext, lake: LakeResource,
                        model_registry: ModelRegistryResource, quality: QualityResource) -> dg.AssetCheckResult:
    date = validate_partition_key(context.partition_key)
    return _schema_result(PredictionsSchema, lake.lake().read("predictions", date))


def _predictions_completeness(context: dg.AssetCheckExecutionContext, lake: LakeResource,
                              model_registry: ModelRegistryResource,
                              quality: QualityResource) -> dg.AssetCheckResult:
    date = validate_partition_key(context.partition_key)
    store = lake.lake()
    fs, _ = lake.landing()
    by_stage, quarantined = {}, []
    for stage in QUARANTINE_STAGES:
        part = quarantine_part(stage)
        ids = (store.read("quarantine", date, ["record_id"], part=part).column("record_id").combine_chunks()
               if store.exists("quarantine", date, part) else pa.array([], pa.string()))
        by_stage[f"quarantined_at_{stage}"] = len(ids)
        quarantined.append(ids)
    report = check_completeness(read_landing_ids(fs, lake.landing_path("transactions", date)),
                                store.read("predictions", date, ["record_id"]).column("record_id"),
                                pa.concat_arrays(quarantined))
    return dg.AssetCheckResult(passed=report.passed, metadata={
        "landing_rows": report.landing_rows, "scored_rows": report.scored_rows,
        "quarantined_rows": report.quarantined_rows, "duplicate_scored_ids": report.duplicate_scored_ids,
        "unexpected_ids": report.unexpected_ids, "unaccounted_ids": report.unaccounted_ids, **by_stage,
    })


def _predictions_drift(context: dg.AssetCheckExecutionContext, lake: LakeResource,
                      model_registry: ModelRegistryResource, quality: QualityResource) -> dg.AssetCheckResult:
    date = validate_partition_key(context.partition_key)
    store = lake.lake()
    scored = store.read("predictions", date, ["score", "model_version"])
    versions = scored.column("model_version").unique().to_pylist()
    if not versions:
        return dg.AssetCheckResult(passed=True, metadata={"status": OK, "rows": 0})
    registry = model_registry.registry()
    loaded = registry.load(registry.version(versions[0]))
    reference = loaded.reference
    ranked = sorted((n for n in loaded.config.features if n in reference),
                    key=lambda n: -reference[n].get("importance", 0.0))[:quality.drift_features]
    current = {"score": scored.column("score").to_numpy().astype(np.float64)}
    features = store.read("features", date, columns=ranked)
    current.update({n: features.column(n).to_numpy().astype(np.float64) for n in ranked})
    report = compare(reference, current, quality.thresholds())
    worst = max(report.features, key=lambda f: f.psi, default=None)
    status = report.status
    return dg.AssetCheckResult(
        passed=status == OK,
        severity=dg.AssetCheckSeverity.ERROR if status == ALERT else dg.AssetCheckSeverity.WARN,
        metadata={
            "status": status,
            "reference_model_version": loaded.ref.version,
            "features_checked": len(report.features),
            "max_psi": round(worst.psi, 5) if worst else 0.0,
            "max_psi_feature": worst.name if worst else "",
            "score_psi": round(next((f.psi for f in report.features if f.name == "score"), 0.0), 5),
            "psi_alert_threshold": quality.psi_alert,
            "drift_table": dg.MetadataValue.md(report.as_markdown()),
        },
    )


def _predictions_model_version(context: dg.AssetCheckExecutionContext, lake: LakeResource,
                               model_registry: ModelRegistryResource,
                               quality: QualityResource) -> dg.AssetCheckResult:
    date = validate_partition_key(context.partition_key)
    found = sorted(lake.lake().read("predictions", date, ["model_version"]).column("model_version")
                   .unique().to_pylist())
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("predictions"), asset_partitions=[date]), limit=1).records
    expected = None
    if records:
        meta = records[0].asset_materialization.metadata
        expected = meta["model_version"].value if "model_version" in meta else None
    champion = model_registry.registry().champion()
    return dg.AssetCheckResult(
        passed=expected is not None and found in ([str(expected)], []),
        metadata={"expected_model_version": str(expected), "found_model_versions": ", ".join(found) or "none",
                  "champion_now": champion.version if champion else "none"},
    )


PREDICTION_CHECKS = {
    "predictions_schema": (_predictions_schema, "Scores in [0, 1] with provenance and a unique record_id (pandera)."),
    "predictions_completeness": (_predictions_completeness,
                                 "Every landing row is scored or quarantined, none twice; counts in metadata."),
    "predictions_drift": (_predictions_drift,
                          "PSI/KS of the score and the most important features against the training reference "
                          "recorded with the model version; ERROR above the alert threshold, WARN above warn."),
    "predictions_model_version": (_predictions_model_version,
                                  "Every row was scored by the version `champion` named when the run started."),
}

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    _PREDICTION_SPECS = [
        dg.AssetCheckSpec(name, asset="predictions", description=text, blocking=True,
                          partitions_def=daily_partitions)
        for name, (_, text) in PREDICTION_CHECKS.items()
    ]


@dg.multi_asset_check(specs=_PREDICTION_SPECS, can_subset=True, name="predictions_checks")
def predictions_checks(context: dg.AssetCheckExecutionContext, lake: LakeResource,
                       model_registry: ModelRegistryResource, quality: QualityResource):
    """The four checks on `predictions` in one step (one pod in production), each selectable alone."""
    for key in context.selected_asset_check_keys:
        fn, _ = PREDICTION_CHECKS[key.name]
        result = fn(context, lake, model_registry, quality)
        yield dg.AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=result.passed,
                                  severity=result.severity, metadata=result.metadata)


ALL_CHECKS = [transactions_schema, features_schema, predictions_checks]
