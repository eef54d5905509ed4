"""The `challenger` alias scored in shadow: the predictions step scores each partition with the
champion and the challenger from one read of the features on one device; this module attaches the
shadow model to the engine, and builds the partitioned challenger asset (never published) and its
per-partition comparison check against the champion's output for the day, which counts the
challenger's consecutive passing partitions for the promotion gate."""


import warnings

import dagster as dg
import numpy as np

from batch_inference.components.errors import TRANSIENT_RETRIES
from batch_inference.components.partition_scope import check_each_day, scope_of
from batch_inference.components.pipeline import Pipeline
from batch_inference.components.promotion import comparison_thresholds, gate_enabled, gate_of
from batch_inference.failures import RUNBOOKS
from batch_inference.modeling.evaluation import output_values
from batch_inference.quality.comparison import ComparisonReport, compare
from batch_inference.resources import LakeResource, ModelRegistryResource

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
        store, scope = p.lake(lake), scope_of(context)
        for date in scope.days:
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
            if scope.single:
                yield dg.MaterializeResult(metadata=metadata)
            else:
                context.add_asset_metadata(metadata, partition_key=date)
        if scope.ranged:
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
            key = dg.AssetCheckKey(challenger_key(p), name)

            def day_checks(date: str) -> list[tuple[dg.AssetCheckKey, dg.AssetCheckResult]]:
                if not store.exists(challenger_asset(p), date):
                    return [(key, dg.AssetCheckResult(passed=True, metadata={"status": "no challenger scored"}))]
                report, versions = compare_day(p, store, date)
                if not versions["same_run"]:
                    return [(key, dg.AssetCheckResult(passed=True, metadata={
                        "status": "stale: the day was last scored without this challenger"}))]
                passes = gate.record_shadow(versions["challenger_version"], date, report.passed)
                # WARN: a disagreeing challenger never fails the champion's run; it only resets its count
                return [(key, dg.AssetCheckResult(passed=report.passed, severity=dg.AssetCheckSeverity.WARN, metadata={
                    **_figures(report), **versions, "reason": report.reason[:1000],
                    "consecutive_passes": passes, "required": p.spec.promotion.shadow_partitions,
                    "runbook": RUNBOOKS["promotion_gate"]}))]

            yield from check_each_day(context, scope_of(context), day_checks)

    return _check
