"""The promotion gate on a real MLflow registry: evaluation set, shadow passes, override, refusals."""

from __future__ import annotations

import copy

import pyarrow as pa
import pytest
import torch

from batch_inference.defs.card_fraud.features import labelled_features
from batch_inference.inference.engine import EngineConfig, InferenceEngine
from batch_inference.lake import Lake
from batch_inference.modeling.evaluation import EvaluationStore, score_table, split
from batch_inference.modeling.promotion import (
    GATE,
    TAG_EVALUATION,
    TAG_SHADOW_PASSES,
    PromotionGate,
    PromotionRefused,
    evaluate_version,
    output_reference,
)
from batch_inference.plugins.heads import Probability
from batch_inference.plugins.tabular import FloatMatrix
from batch_inference.quality.comparison import SCORES
from batch_inference_tests.conftest import artifact_of


def degenerate(trained):
    """The operator's broken version: the last layer zeroed, so every score is 0.5."""
    broken = copy.deepcopy(trained)
    with torch.no_grad():
        broken.model.net[-1].weight.zero_()
        broken.model.net[-1].bias.zero_()
    return broken


@pytest.fixture
def evaluation(home, tmp_path):
    store = EvaluationStore(Lake(f"{home.lake_uri}/card_fraud"))
    table = labelled_features("2026-01-09", 6_000)
    _, held = split(table, "record_id", 0.25)
    return store, store.create(held, "2026-01-09..2026-01-09", label_column="label")


def _scorer(registry):
    def score(version: str) -> pa.Table:
        loaded = registry.load(registry.version(version))
        engine = InferenceEngine(loaded.model, FloatMatrix.from_model(loaded.artifact), Probability(),
                                 EngineConfig(device="cpu"))
        return score_table(engine, store_rows["rows"])

    store_rows: dict = {}
    return score, store_rows


def _evaluate(registry, store, evaluation, candidate, champion):
    score, rows = _scorer(registry)
    rows["rows"] = store.read(evaluation)
    report, digest = evaluate_version(store, evaluation, candidate, champion, score, kind=SCORES,
                                      key="record_id", output_column="score", threshold=0.5)
    PromotionGate(registry, 3).record_evaluation(candidate, report, evaluation, champion, digest)
    return report


def test_degenerate_version_fails_the_evaluation_set_and_is_refused(registry, trained_small, evaluation, tmp_path):
    store, ev = evaluation
    gate = PromotionGate(registry, shadow_partitions=3)
    first = _evaluate(registry, store, ev, "1", None)
    assert first.passed, first.reason
    assert first.figures["auc"] > 0.8  # a real model against the labels
    assert gate.decide("1").allowed  # the first champion needs no shadow days

    broken = registry.register(artifact_of(degenerate(trained_small), tmp_path / "broken"))  # its own reference
    report = _evaluate(registry, store, ev, broken.version, "1")
    assert not report.passed
    assert report.reason.startswith("degenerate output: constant output")
    assert registry.version_tags(broken.version)[TAG_EVALUATION] == "failed"
    with pytest.raises(PromotionRefused, match=f"^{GATE}: v2 has not passed the evaluation-set comparison "
                       r"\(it failed: degenerate output"):
        gate.require(broken.version)
    with pytest.raises(PromotionRefused, match="no evaluation-set output reference"):
        output_reference(store, registry, broken.version, "score")
    # The champion's outputs on the set were stored at its own evaluation and reused, digest-checked.
    assert store.read_outputs(ev, "1") is not None
    reference = output_reference(store, registry, "1", "score")
    assert reference["n"] == ev.rows


def test_shadow_passes_then_promotion_and_the_audited_override(registry, trained_small, evaluation, tmp_path):
    store, ev = evaluation
    gate = PromotionGate(registry, shadow_partitions=3)
    candidate = registry.register(artifact_of(trained_small, tmp_path / "v2")).version
    assert _evaluate(registry, store, ev, candidate, "1").passed
    with pytest.raises(PromotionRefused, match="has 0 of the 3 consecutive passing shadow partitions"):
        gate.require(candidate)
    assert gate.record_shadow(candidate, "2026-01-10", True) == 1
    assert gate.record_shadow(candidate, "2026-01-11", False) == 0  # a failure resets the count
    for day in ("2026-01-12", "2026-01-13"):
        gate.record_shadow(candidate, day, True)
    assert gate.state(candidate).shadow_passes == 2
    assert not gate.decide(candidate).allowed
    assert gate.record_shadow(candidate, "2026-01-14", True) == 3
    assert registry.version_tags(candidate)[TAG_SHADOW_PASSES] == "3"
    decision = gate.require(candidate)
    assert "evaluation set passed, 3 consecutive shadow partitions passed" in decision.reason

    never = registry.register(artifact_of(trained_small, tmp_path / "v3")).version
    with pytest.raises(PromotionRefused, match="it was never evaluated"):
        gate.require(never)
    registry.set_version_tag(never, "batch_inference.promotion.override", "alice:")  # no reason: no override
    assert not gate.decide(never).allowed
    gate.override(never, "alice", "hotfix INC-42")
    decision = gate.require(never)
    assert decision.via_override and "overridden for v3 by alice: hotfix INC-42" in decision.reason
