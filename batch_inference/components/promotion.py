"""The promotion gate in Dagster: the evaluation set at registration, the refusal when scoring, the
guard in the champion sensor. The gate itself is `batch_inference.modeling.promotion` (no Dagster)."""

from __future__ import annotations

import time

import pyarrow as pa

from batch_inference.components.pipeline import Pipeline
from batch_inference.failures import RUNBOOKS
from batch_inference.modeling.evaluation import EvaluationSet, EvaluationStore, score_table, split, without
from batch_inference.modeling.promotion import GATE, PromotionGate, PromotionRefused, evaluate_version
from batch_inference.quality.comparison import ComparisonThresholds

RUNBOOK = RUNBOOKS["promotion_gate"]


def gate_enabled(p: Pipeline) -> bool:
    return p.spec.promotion.enabled


def gate_of(p: Pipeline, registry) -> PromotionGate:
    return PromotionGate(registry, p.spec.promotion.shadow_partitions)


def evaluation_store(p: Pipeline, lake_resource) -> EvaluationStore:
    return EvaluationStore(p.lake(lake_resource))


def comparison_thresholds(p: Pipeline) -> ComparisonThresholds:
    return ComparisonThresholds(**p.spec.promotion.comparison)


def require_gate(p: Pipeline, registry, ref) -> None:
    """Refuse to score with a version the gate has not let through (a hand-moved alias)."""
    if gate_enabled(p):
        decision = gate_of(p, registry).decide(ref.version)
        if not decision.allowed:
            raise PromotionRefused(f"{p.name}: refusing to score with `{p.spec.registered_model.alias}` = "
                                   f"{ref.uri}: {decision.reason}; move the alias back, or promote through the "
                                   f"gate (runbook {RUNBOOK})")


def with_labels(p: Pipeline, features: pa.Table, labels: pa.Table | None) -> pa.Table:
    """Feature rows joined with their latest known label as `label` (rows without one dropped)."""
    if p.spec.labels is None or labels is None:
        return features
    from batch_inference.quality.labels import latest_labels

    latest = latest_labels(labels, p.row_key)  # read_labels names them (row key, label, labelled_at)
    joined = features.join(latest, p.row_key, join_type="inner")
    return joined.sort_by(p.row_key)


def cut_evaluation_set(p: Pipeline, store: EvaluationStore, features: pa.Table | None, labels: pa.Table | None,
                       window: list[str], context) -> tuple[EvaluationSet | None, pa.Table | None]:
    """The pipeline's evaluation set (cut now from the first training window if there is none yet),
    and the features less its rows, so the builder never trains on them."""
    if not gate_enabled(p) or features is None or features.num_rows == 0:
        return store.latest() if gate_enabled(p) else None, features
    evaluation = store.latest()
    if evaluation is None:
        _, held = split(features, p.row_key, p.spec.promotion.evaluation_fraction)
        rows = with_labels(p, held, labels)
        if rows.num_rows == 0:  # only a pipeline with labels drops rows here
            raise ValueError(f"{p.name}: none of the {held.num_rows} held-out rows of {window[0]}..{window[-1]} has "
                             "a label yet; the evaluation set needs labelled rows")
        evaluation = store.create(rows, f"{window[0]}..{window[-1]}",
                                  label_column="label" if p.spec.labels is not None else None)
        context.log.info(f"{p.name}: evaluation set v{evaluation.version} cut from {evaluation.window}: "
                         f"{evaluation.rows} rows, SHA-256 {evaluation.sha256[:16]}…")
    return evaluation, without(features, p.row_key, store.read(evaluation))


def evaluate_and_place(p: Pipeline, context, store: EvaluationStore, evaluation: EvaluationSet, registry, ref,
                       policy: str) -> dict:
    """Score the new version on the evaluation set, compare it with the champion, record the gate's
    verdict on the version, and move an alias: `champion` for the pipeline's first version,
    `challenger` (scored in shadow) for later ones. Returns the model asset's metadata."""
    from batch_inference.inference.engine import EngineConfig, InferenceEngine

    started = time.perf_counter()
    rows = store.read(evaluation)
    spec = p.spec.promotion

    def score(version: str) -> pa.Table:
        loaded = registry.load(registry.version(version))
        engine = InferenceEngine(loaded.model, p.adapter(loaded), p.head, EngineConfig(device=p.spec.scoring.device),
                                 key=p.row_key)
        return score_table(engine, rows)

    champion = registry.champion()
    champion_version = champion.version if champion is not None and champion.version != ref.version else None
    report, digest = evaluate_version(store, evaluation, ref.version, champion_version, score, kind=spec.output_kind,
                                      key=p.row_key, output_column=spec.output_column, threshold=spec.threshold,
                                      thresholds=comparison_thresholds(p))
    gate = gate_of(p, registry)
    gate.record_evaluation(ref.version, report, evaluation, champion_version, digest)
    placed = ""
    if not report.passed:
        context.log.warning(f"{p.name} v{ref.version} failed the {GATE}'s evaluation-set comparison: {report.reason}")
    elif policy == "never":
        placed = ""
    elif champion_version is None:
        registry.set_champion(ref.version)
        placed = p.spec.registered_model.alias
    else:
        registry.set_alias(spec.challenger_alias, ref.version)
        placed = spec.challenger_alias
    if placed:
        context.log.info(f"{p.name}: `{placed}` -> v{ref.version} ({report.reason})")
    metadata = {
        "promoted": placed == p.spec.registered_model.alias, "alias_set": placed or "none",
        "champion_version": ref.version if placed == p.spec.registered_model.alias else (champion_version or ""),
        "evaluation_passed": report.passed, "evaluation_reason": report.reason[:1000],
        "evaluation_set": f"v{evaluation.version}", "evaluation_rows": evaluation.rows,
        "evaluation_compared_with": report.compared_with,
        "evaluation_seconds": round(time.perf_counter() - started, 3),
    }
    metadata.update({f"evaluation_{k}": round(v, 5) for k, v in report.figures.items()
                     if isinstance(v, float) and v == v})
    return metadata


def guard_champion_move(p: Pipeline, context, registry, previous: str | None, version: str) -> str | None:
    """When `champion` moved to `version`: None if the gate allows it; else put the alias back (to
    `previous`, or remove it), fire an alert, and return why (naming the gate)."""
    if not gate_enabled(p):
        return None
    decision = gate_of(p, registry).decide(version)
    if decision.allowed:
        if decision.via_override:
            context.log.warning(f"{p.name}: {decision.reason}")
        return None
    alias = p.spec.registered_model.alias
    if previous and previous != version:
        registry.set_champion(previous)
        undo = f"`{alias}` put back to v{previous}"
    else:
        registry.delete_alias(alias)
        undo = f"`{alias}` removed (no earlier champion)"
    message = (f"{p.name}: refused the move of `{alias}` to v{version}: {decision.reason}; {undo}; nothing "
               f"re-scored (runbook {RUNBOOK})")
    context.log.error(message)
    _alert(context, p, message)
    return message


PROMOTION_REFUSED = "BatchInferencePromotionRefused"


def _alert(context, p: Pipeline, message: str) -> None:
    """Post the refusal to Alertmanager (when configured); a failed post is logged, never raised."""
    from batch_inference.alerting import Alert, post_alerts
    from batch_inference.settings import load_settings

    url = load_settings().alertmanager_url
    if not url:
        return
    alert = Alert(alertname=PROMOTION_REFUSED, pipeline=p.name, asset="model", runbook="promotion_gate",
                  summary=message[:500], run_id="", occurred_at=time.time(), description=message)
    delivery = post_alerts(url, [alert])
    if not delivery.accepted:
        context.log.warning(f"promotion-gate alert not accepted by {url}: {delivery.status} {delivery.detail}")


def gate_metadata(p: Pipeline, registry, version: str) -> dict:
    """What the gate says about a version, for a materialization's metadata."""
    state = gate_of(p, registry).state(version)
    return {"gate_evaluation": state.evaluation or "none", "gate_shadow_passes": state.shadow_passes,
            "gate_shadow_required": p.spec.promotion.shadow_partitions}



CANARY_BASELINE = "_canary_baseline"  # the old champion's output of the canary day ("_": no serving view)


def keep_canary_baseline(p: Pipeline, lake_resource, date: str) -> bool:
    """Before the canary re-scores `date`, keep the old champion's output of that day to compare with."""
    store = p.lake(lake_resource)
    if not gate_enabled(p) or not store.exists(p.spec.scoring.asset, date):
        return False
    columns = [p.row_key, p.spec.promotion.output_column, "model_version"]
    store.write(CANARY_BASELINE, date, store.read(p.spec.scoring.asset, date, columns))
    return True


def compare_canary(p: Pipeline, context, lake_resource, date: str) -> str | None:
    """After the canary run: the new champion's partition against the old champion's output for the
    day. None when they agree (or there is no baseline); else why not, logged and alerted."""
    from batch_inference.modeling.evaluation import output_values
    from batch_inference.quality.comparison import compare

    store = p.lake(lake_resource)
    if not gate_enabled(p) or not store.exists(CANARY_BASELINE, date):
        return None
    spec, key = p.spec.promotion, p.row_key
    old = store.read(CANARY_BASELINE, date).sort_by(key)
    new = store.read(p.spec.scoring.asset, date, [key, spec.output_column, "model_version"]).sort_by(key)
    if old.column(key).to_pylist() != new.column(key).to_pylist():
        problem = f"the canary's rows of {date} are not the old champion's rows ({new.num_rows} against {old.num_rows})"
    else:
        report = compare(spec.output_kind, output_values(new, spec.output_column),
                         output_values(old, spec.output_column), threshold=spec.threshold,
                         thresholds=comparison_thresholds(p))
        context.log.info(f"{p.name} canary {date}: new champion vs old champion's output: {report.reason}")
        problem = None if report.passed else report.reason
    if problem is None:
        return None
    versions = (old.column("model_version")[0].as_py() if old.num_rows else "?",
                new.column("model_version")[0].as_py() if new.num_rows else "?")
    message = (f"{p.name}: canary {date}: v{versions[1]} disagrees with the old champion v{versions[0]}'s output "
               f"for the day: {problem}; not re-scoring the other days (runbook {RUNBOOK})")
    context.log.error(message)
    _alert(context, p, message)
    return message
