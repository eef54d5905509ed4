"""The `challenger` alias scored in shadow: the predictions step scores each partition with the
champion and the challenger from one read of the features on one device; this module attaches the
shadow model to the engine, and builds the partitioned challenger asset (never published) and its
per-partition comparison check against the champion's output for the day, which counts the
challenger's consecutive passing partitions for the promotion gate."""


import warnings

import dagster as dg
import numpy as np

from batch_inference.components.checks import check_dates, per_partition, single_partition_run
from batch_inference.components.errors import TRANSIENT_RETRIES
from batch_inference.components.pipeline import Pipeline
from batch_inference.components.promotion import comparison_thresholds, gate_enabled, gate_of
from batch_inference.failures import RUNBOOKS
from batch_inference.modeling.evaluation import output_values
from batch_inference.quality.comparison import ComparisonReport, compare
from batch_inference.resources import LakeResource, ModelRegistryResource
from batch_inference.validation import validate_partition_key

AGREEMENT = "agreement"


def challenger_asset(p: Pipeline) -> str:
    return f"challenger_{p.spec.scoring.asset}"


def challenger_key(p: Pipeline) -> dg.AssetKey:
    return p.key(challenger_asset(p))


def attach_shadow(p: Pipeline, registry, engine, champion_ref):
    """Load the `challenger` version (digest-verified) and score it in shadow on `engine`; returns its
    ref, or None when the pipeline has no gate, no challenger, or the challenger is the champion."""
    if not gate_enabled(p):
        return None
    ref = registry.alias_version(p.spec.promotion.challenger_alias)
    if ref is None or ref.version == champion_ref.version:
        return None
    from batch_inference.inference.engine import InferenceEngine

    loaded = registry.load(ref)
    engine.with_shadow(InferenceEngine(loaded.model, p.adapter(loaded), p.head, engine.config, key=p.row_key))
    return ref


def compare_day(p: Pipeline, store, date: str) -> tuple[ComparisonReport, dict]:
    """The challenger's partition against the champion's output for the same day, row for row."""
    spec, key, column = p.spec.promotion, p.row_key, p.spec.promotion.output_column
    champion = store.read(p.spec.scoring.asset, date, [key, column, "model_version", "run_id"])
    shadow = store.read(challenger_asset(p), date, [key, column, "model_version", "run_id"])
    if champion.column(key).to_pylist() != shadow.column(key).to_pylist():
        raise ValueError(f"{p.name} {date}: the challenger's rows are not the champion's rows of the day "
                         f"({shadow.num_rows} against {champion.num_rows}); re-score the day")
    report = compare(spec.output_kind, output_values(shadow, column), output_values(champion, column),
                     threshold=spec.threshold, thresholds=comparison_thresholds(p))
    versions = {"challenger_version": shadow.column("model_version")[0].as_py() if shadow.num_rows else "",
                "champion_version": champion.column("model_version")[0].as_py() if champion.num_rows else "",
                "same_run": champion.num_rows == 0 or
                champion.column("run_id")[0].as_py() == shadow.column("run_id")[0].as_py()}
    return report, versions


def _figures(report: ComparisonReport) -> dict:
    return {k: round(float(v), 6) for k, v in report.figures.items() if isinstance(v, float) and np.isfinite(v)}


def build_challenger_asset(p: Pipeline) -> dg.AssetsDefinition:
    @dg.asset(key=challenger_key(p), partitions_def=p.partitions_def, deps=[p.key(p.spec.scoring.asset)],
              group_name=p.group, kinds={"parquet"}, code_version="1", retry_policy=TRANSIENT_RETRIES,
              backfill_policy=p.backfill_policy, output_required=False,
              description=f"The `{p.spec.promotion.challenger_alias}` version's outputs of the day, scored in "
              f"shadow in the same step and from the same read as `{p.spec.scoring.asset}`. Never published; "
              "compared with the champion's output for the day (figures plot over partitions).")
    def _challenger(context: dg.AssetExecutionContext, lake: LakeResource):
        store = p.lake(lake)
        for date in [validate_partition_key(k) for k in context.partition_keys]:
            if not store.exists(challenger_asset(p), date):
                context.log.info(f"{p.name} {date}: no challenger scored in shadow (no `challenger` alias)")
                continue
            report, versions = compare_day(p, store, date)
            if not versions["same_run"]:
                context.log.info(f"{p.name} {date}: the challenger's output is from an earlier scoring run; "
                                 "the day was last scored without a challenger")
                continue
            metadata = {**_figures(report), **versions, "rows": report.rows, "passed": report.passed,
                        "reason": report.reason[:1000]}
            if len(context.partition_keys) == 1:
                yield dg.MaterializeResult(metadata=metadata)
            else:
                context.add_asset_metadata(metadata, partition_key=date)
        if len(context.partition_keys) > 1:
            yield dg.MaterializeResult()

    return _challenger


def build_challenger_check(p: Pipeline) -> dg.AssetChecksDefinition:
    name = f"{challenger_asset(p)}_{AGREEMENT}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # partitioned checks are a preview API

        @dg.asset_check(asset=challenger_key(p), name=name, blocking=False, partitions_def=p.partitions_def,
                        description="The challenger against the champion's output for the day: rank correlation, "
                        "decision flips, PSI between the versions (scores) or cosine and neighbours (embeddings). "
                        "Each passing day counts towards the promotion gate's K consecutive shadow partitions.")
        def _check(context: dg.AssetCheckExecutionContext, lake: LakeResource, model_registry: ModelRegistryResource):
            store, gate = p.lake(lake), gate_of(p, p.registry(model_registry))
            results = {}
            for date in check_dates(context):
                if not store.exists(challenger_asset(p), date):
                    results[date] = dg.AssetCheckResult(passed=True, metadata={"status": "no challenger scored"})
                    continue
                report, versions = compare_day(p, store, date)
                if not versions["same_run"]:
                    results[date] = dg.AssetCheckResult(passed=True, metadata={
                        "status": "stale: the day was last scored without this challenger"})
                    continue
                passes = gate.record_shadow(versions["challenger_version"], date, report.passed)
                results[date] = dg.AssetCheckResult(passed=report.passed, metadata={
                    **_figures(report), **versions, "reason": report.reason[:1000],
                    "consecutive_passes": passes, "required": p.spec.promotion.shadow_partitions,
                    "runbook": RUNBOOKS["promotion_gate"]})
            if single_partition_run(context):
                yield next(iter(results.values()))
                return
            for date, result in results.items():
                yield per_partition(context.instance, dg.AssetCheckKey(challenger_key(p), name), result, date)
            yield dg.Output(None, output_name="result")

    return _check
