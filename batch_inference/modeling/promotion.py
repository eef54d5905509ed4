"""The promotion gate: `champion` moves to a version only after it has earned it.

A version may become champion once it has

1. passed the comparison on the pipeline's fixed evaluation set (against the current champion's
   outputs on the same rows, against labels where the pipeline has them, never degenerate), and
2. passed K consecutive shadow partitions as `challenger` (K from the pipeline's YAML); the very
   first champion of a pipeline, with nothing to shadow, needs only (1).

The gate's state lives on the MLflow model version as tags, so the registry UI shows it and any
process can read it. The one way around the gate is an explicit, audited override tag
`batch_inference.promotion.override = <who>:<reason>`. No Dagster import, no example names.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from batch_inference.modeling.evaluation import EvaluationSet, EvaluationStore, output_values
from batch_inference.modeling.registry import ModelRegistry
from batch_inference.quality.comparison import ComparisonReport, ComparisonThresholds, compare
from batch_inference.quality.reference import column_reference

GATE = "promotion gate"
TAG_EVALUATION = "batch_inference.gate.evaluation"  # passed | failed
TAG_EVALUATION_REASON = "batch_inference.gate.evaluation_reason"
TAG_EVALUATION_SET = "batch_inference.gate.evaluation_set"  # v<N>:<sha256>
TAG_EVALUATION_FIGURES = "batch_inference.gate.evaluation_figures"  # JSON: auc, pr_auc, rank_correlation...
TAG_OUTPUTS_SHA256 = "batch_inference.gate.outputs_sha256"  # its outputs on the evaluation set
TAG_COMPARED_WITH = "batch_inference.gate.compared_with"  # the champion version it was compared with
TAG_SHADOW_PASSES = "batch_inference.gate.shadow_passes"  # consecutive passing shadow partitions
TAG_SHADOW_RESULTS = "batch_inference.gate.shadow_results"  # JSON {date: passed}, the latest days
TAG_OVERRIDE = "batch_inference.promotion.override"  # <who>:<reason>
SHADOW_HISTORY = 60  # days of shadow results kept in the tag
PASSED, FAILED = "passed", "failed"


class PromotionRefused(RuntimeError):
    """A move of `champion` that the promotion gate does not allow."""


def parse_override(value: str | None) -> tuple[str, str] | None:
    """`<who>:<reason>` with both parts non-empty, else None (a bare or empty tag is no override)."""
    if not value or ":" not in value:
        return None
    who, reason = (part.strip() for part in value.split(":", 1))
    return (who, reason) if who and reason else None


@dataclass(frozen=True)
class GateState:
    """What the version's tags say about its way through the gate."""

    version: str
    evaluation: str | None = None
    evaluation_reason: str = ""
    evaluation_set: str = ""
    figures: dict = field(default_factory=dict)
    shadow_results: dict[str, bool] = field(default_factory=dict)
    override: tuple[str, str] | None = None
    compared_with: str = ""  # the champion version it was compared with; empty: the pipeline had none

    @classmethod
    def from_tags(cls, version: str, tags: dict[str, str]) -> GateState:
        def load(name: str) -> dict:
            try:
                value = json.loads(tags.get(name) or "{}")
            except ValueError:
                return {}
            return value if isinstance(value, dict) else {}

        return cls(version=str(version), evaluation=tags.get(TAG_EVALUATION),
                   evaluation_reason=tags.get(TAG_EVALUATION_REASON, ""),
                   evaluation_set=tags.get(TAG_EVALUATION_SET, ""), figures=load(TAG_EVALUATION_FIGURES),
                   shadow_results={str(k): bool(v) for k, v in load(TAG_SHADOW_RESULTS).items()},
                   override=parse_override(tags.get(TAG_OVERRIDE)), compared_with=tags.get(TAG_COMPARED_WITH, ""))

    @property
    def shadow_passes(self) -> int:
        """Passing shadow partitions in a row, counted back from the latest day judged."""
        count = 0
        for date in sorted(self.shadow_results, reverse=True):
            if not self.shadow_results[date]:
                break
            count += 1
        return count


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reason: str
    via_override: bool = False


def decide(state: GateState, shadow_partitions: int) -> GateDecision:
    """May `champion` name this version? The reason always names the gate.

    A version evaluated when the pipeline had no champion (nothing to compare with, nothing to
    shadow) is a first champion: it needs the evaluation set only.
    """
    v = f"v{state.version}"
    first_champion = not state.compared_with
    if state.override:
        who, why = state.override
        return GateDecision(True, f"{GATE} overridden for {v} by {who}: {why} (tag {TAG_OVERRIDE})", True)
    if state.evaluation != PASSED:
        detail = f"it failed: {state.evaluation_reason}" if state.evaluation == FAILED else "it was never evaluated"
        return GateDecision(False, f"{GATE}: {v} has not passed the evaluation-set comparison ({detail})")
    if not first_champion and state.shadow_passes < shadow_partitions:
        return GateDecision(False, f"{GATE}: {v} has {state.shadow_passes} of the {shadow_partitions} consecutive "
                            "passing shadow partitions it needs as `challenger`")
    how = "first champion, evaluation set passed" if first_champion and state.shadow_passes < shadow_partitions \
        else f"evaluation set passed, {state.shadow_passes} consecutive shadow partitions passed"
    return GateDecision(True, f"{GATE} passed for {v}: {how}")


class PromotionGate:
    """The gate of one registered model: reads and records its state on the versions' tags."""

    def __init__(self, registry: ModelRegistry, shadow_partitions: int) -> None:
        if shadow_partitions < 0:
            raise ValueError(f"shadow_partitions must be >= 0, got {shadow_partitions}")
        self.registry = registry
        self.shadow_partitions = shadow_partitions

    def state(self, version: str) -> GateState:
        return GateState.from_tags(str(version), self.registry.version_tags(version))

    def decide(self, version: str) -> GateDecision:
        return decide(self.state(version), self.shadow_partitions)

    def require(self, version: str) -> GateDecision:
        """The decision, or `PromotionRefused` with its reason."""
        decision = self.decide(version)
        if not decision.allowed:
            raise PromotionRefused(decision.reason)
        return decision

    def record_evaluation(self, version: str, report: ComparisonReport, evaluation: EvaluationSet,
                          compared_with: str | None, outputs_sha256: str) -> None:
        tags = {
            TAG_EVALUATION_SET: f"v{evaluation.version}:{evaluation.sha256}",
            TAG_EVALUATION_FIGURES: json.dumps(report.as_dict()["figures"], sort_keys=True),
            TAG_OUTPUTS_SHA256: outputs_sha256,
            TAG_COMPARED_WITH: compared_with or "",
            TAG_EVALUATION_REASON: report.reason[:4000],
            TAG_EVALUATION: PASSED if report.passed else FAILED,  # last: the verdict follows its evidence
        }
        for key, value in tags.items():
            self.registry.set_version_tag(version, key, value)

    def record_shadow(self, version: str, date: str, passed: bool) -> int:
        """Record one shadow partition's verdict; returns the consecutive passes now."""
        results = dict(self.state(version).shadow_results)
        results[date] = bool(passed)
        kept = dict(sorted(results.items())[-SHADOW_HISTORY:])
        self.registry.set_version_tag(version, TAG_SHADOW_RESULTS, json.dumps(kept, sort_keys=True))
        passes = GateState(str(version), shadow_results=kept).shadow_passes
        self.registry.set_version_tag(version, TAG_SHADOW_PASSES, str(passes))
        return passes

    def override(self, version: str, who: str, reason: str) -> None:
        """Set the audited override: the one way to promote around the gate."""
        if parse_override(f"{who}:{reason}") is None:
            raise ValueError("an override needs who and why")
        self.registry.set_version_tag(version, TAG_OVERRIDE, f"{who}:{reason}")


def evaluate_version(store: EvaluationStore, evaluation: EvaluationSet, candidate: str, champion: str | None,
                     score: Callable[[str], pa.Table], *, kind: str, key: str, output_column: str,
                     threshold: float = 0.5, thresholds: ComparisonThresholds | None = None
                     ) -> tuple[ComparisonReport, str]:
    """Score `candidate` on the evaluation set and compare it with `champion`'s outputs and the labels.

    `score(version)` returns that version's outputs on the evaluation set (`key` + the output
    column). The champion's stored outputs are reused when present (digest-checked), else it is
    scored now and stored too. Returns the report and the SHA-256 of the candidate's stored outputs.
    """
    rows = store.read(evaluation)
    cand = score(candidate)
    digest = store.write_outputs(evaluation, candidate, cand)
    champ = None
    if champion is not None and str(champion) != str(candidate):
        champ = store.read_outputs(evaluation, champion)
        if champ is None:
            champ = score(champion)
            store.write_outputs(evaluation, champion, champ)
    order = _aligned(rows.column(key), cand.column(key), "candidate")
    labels = None
    if evaluation.label_column:
        labels = rows.column(evaluation.label_column).to_numpy(zero_copy_only=False).astype(np.float64)
    champion_values = None
    if champ is not None:
        champion_values = output_values(champ, output_column)[_aligned(rows.column(key), champ.column(key),
                                                                       "champion")]
    report = compare(kind, output_values(cand, output_column)[order], champion_values, labels, threshold, thresholds)
    return report, digest


def _aligned(expected: pa.ChunkedArray, found: pa.ChunkedArray, who: str) -> np.ndarray:
    """Indices that put `found` in the evaluation set's row order; every row must be there once."""
    position = {k: i for i, k in enumerate(found.to_pylist())}
    keys = expected.to_pylist()
    missing = [k for k in keys if k not in position]
    if missing or len(position) != len(keys):
        raise ValueError(f"the {who}'s outputs do not cover the evaluation set row for row: {len(missing)} "
                         f"missing (e.g. {missing[:3]}), {len(found)} outputs for {len(keys)} rows")
    return np.fromiter((position[k] for k in keys), dtype=np.int64, count=len(keys))


def output_reference(store: EvaluationStore, registry: ModelRegistry, version: str, output_column: str) -> dict:
    """The drift reference of the version's output column, from its outputs on the evaluation set.

    Only a version whose evaluation-set comparison passed has one: the reference is anchored on
    the fixed rows the champion was compared on, never on the candidate's own training data alone.
    """
    state = GateState.from_tags(str(version), tags := registry.version_tags(version))
    if state.evaluation != PASSED:
        raise PromotionRefused(f"{GATE}: v{version} has no evaluation-set output reference: its evaluation "
                               f"is {state.evaluation or 'missing'}")
    set_version = int(state.evaluation_set.split(":", 1)[0].removeprefix("v"))
    outputs = store.read_outputs(store.get(set_version), version, tags.get(TAG_OUTPUTS_SHA256))
    if outputs is None:
        raise PromotionRefused(f"{GATE}: v{version}'s outputs on evaluation set v{set_version} are missing")
    return column_reference(output_values(outputs, output_column))
