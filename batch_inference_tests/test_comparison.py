"""Version comparison, realized performance and the evaluation set, checked against brute-force formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyarrow as pa
import pytest

from batch_inference.lake import Lake
from batch_inference.modeling.evaluation import (
    EvaluationSetError,
    EvaluationStore,
    output_values,
    split,
    without,
)
from batch_inference.quality import comparison as cmp
from batch_inference.quality import performance as perf


def _brute_auc(y, s) -> float:
    pos = [v for v, t in zip(s, y, strict=True) if t]
    neg = [v for v, t in zip(s, y, strict=True) if not t]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def _brute_average_precision(y, s) -> float:
    """AP without ties: the mean, over positives, of the precision among rows scored at least as high."""
    order = sorted(range(len(s)), key=lambda i: -s[i])
    hits, total = 0, 0.0
    for rank, i in enumerate(order, start=1):
        if y[i]:
            hits += 1
            total += hits / rank
    return total / sum(y)


def test_auc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.3
    s = np.round(rng.random(300) + 0.3 * y, 1)  # rounded: many ties
    assert perf.roc_auc(y, s) == pytest.approx(_brute_auc(y.tolist(), s.tolist()), abs=1e-12)
    assert math.isnan(perf.roc_auc(np.zeros(5), np.arange(5.0)))


def test_pr_auc_matches_average_precision():
    rng = np.random.default_rng(4)
    y = rng.random(400) < 0.1
    s = rng.random(400) + 0.5 * y  # continuous: no ties
    assert perf.pr_auc(y, s) == pytest.approx(_brute_average_precision(y.tolist(), s.tolist()), abs=1e-12)
    # Hand example: ranks 1 (pos), 2 (neg), 3 (pos): AP = (1/1 + 2/3) / 2.
    assert perf.pr_auc([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx((1 + 2 / 3) / 2)
    # A tie of every row: one step at the base rate.
    assert perf.pr_auc([1, 0, 0, 0], [0.5] * 4) == pytest.approx(0.25)


def test_brier_calibration_and_precision_by_hand():
    y = np.array([1, 0, 0, 1])
    s = np.array([0.9, 0.2, 0.6, 0.4])
    assert perf.brier(y, s) == pytest.approx((0.01 + 0.04 + 0.36 + 0.36) / 4)
    # Bins of width 0.1: each row alone in its bin, |score - label| averaged.
    assert perf.expected_calibration_error(y, s) == pytest.approx((0.1 + 0.2 + 0.6 + 0.6) / 4)
    assert perf.precision_at(y, s, 0.5) == pytest.approx(0.5)  # 0.9 (pos) and 0.6 (neg) flagged
    assert perf.recall_at(y, s, 0.5) == pytest.approx(0.5)
    assert math.isnan(perf.precision_at(y, s, 0.95))
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        perf.brier([0, 2], [0.1, 0.2])


def test_measure_and_judge():
    rng = np.random.default_rng(5)
    y = rng.random(5_000) < 0.05
    good = np.clip(rng.normal(0.2 + 0.5 * y, 0.15), 0, 1)
    realized = perf.measure(y, good, threshold=0.5, rows=10_000)
    assert realized.label_coverage == pytest.approx(0.5)
    assert realized.as_dict()["labelled_rows"] == 5_000
    expected = {"auc": realized.auc, "pr_auc": realized.pr_auc}
    assert perf.judge(realized, expected, margin=0.05, min_labelled=100).passed
    noisy = perf.measure(y, np.clip(good + rng.normal(0, 0.5, len(good)), 0, 1), threshold=0.5)
    verdict = perf.judge(noisy, expected, margin=0.05, min_labelled=100)
    assert not verdict.passed and "auc" in verdict.reason
    few = perf.measure(y[:50], good[:50], threshold=0.5)
    assert perf.judge(few, expected, margin=0.05, min_labelled=100).passed  # not judged yet
    assert not perf.judge(realized, {}, margin=0.05, min_labelled=100).passed  # nothing to compare with


def test_spearman_and_flip_rate():
    rng = np.random.default_rng(6)
    a = rng.random(200)
    b = a + rng.normal(0, 0.05, 200)
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))  # no ties: ranks by double argsort
    assert cmp.spearman(a, b) == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    assert cmp.spearman(a, -a) == pytest.approx(-1.0)
    assert math.isnan(cmp.spearman(a, np.full(200, 0.5)))
    assert cmp.flip_rate([0.1, 0.6, 0.7, 0.4], [0.2, 0.4, 0.8, 0.5], 0.5) == pytest.approx(0.5)


def test_version_psi_small_for_the_same_distribution_large_for_a_shift():
    rng = np.random.default_rng(7)
    champion = rng.beta(2, 8, 20_000)
    assert cmp.version_psi(champion, rng.beta(2, 8, 20_000)) < 0.01
    assert cmp.version_psi(champion, rng.beta(5, 5, 20_000)) > 0.25


def _scores(rng, n=4_000):
    y = rng.random(n) < 0.1
    champion = np.clip(rng.normal(0.15 + 0.5 * y, 0.12), 0, 1)
    return y, champion


def test_a_close_candidate_passes_and_a_constant_one_fails_whatever_its_reference():
    rng = np.random.default_rng(8)
    y, champion = _scores(rng)
    close = np.clip(champion + rng.normal(0, 0.01, len(champion)), 0, 1)
    report = cmp.compare_scores(close, champion, y, threshold=0.5)
    assert report.passed, report.reason
    assert report.compared_with == "champion and labels"
    assert report.figures["rank_correlation"] > 0.95 and report.figures["flip_rate"] < 0.05

    constant = np.full(len(champion), 0.5)
    for against in (None, constant):  # alone, and even against a champion that is itself constant
        failed = cmp.compare_scores(constant, against, None, threshold=0.5)
        assert not failed.passed
        assert failed.reason.startswith("degenerate output: constant output")
    near = champion * 1e-5 + 0.5  # near-constant: a spread far below the threshold
    assert not cmp.compare_scores(near).passed


def test_a_worse_candidate_fails_on_labels_and_agreement():
    rng = np.random.default_rng(9)
    y, champion = _scores(rng)
    shuffled = rng.permutation(champion)  # same distribution (PSI ~0), no relation to the rows
    report = cmp.compare_scores(shuffled, champion, y, threshold=0.5)
    assert not report.passed
    assert "rank_correlation" in report.reason and "auc" in report.reason
    assert report.figures["psi"] < 0.05


def test_embeddings_agreement_and_collapse():
    rng = np.random.default_rng(10)
    champion = rng.normal(size=(400, 32))
    champion /= np.linalg.norm(champion, axis=1, keepdims=True)
    same = champion + rng.normal(0, 0.01, champion.shape)
    report = cmp.compare_embeddings(same, champion)
    assert report.passed, report.reason
    assert report.figures["mean_cosine"] > 0.99 and report.figures["neighbour_agreement"] > 0.9
    # A random-weight encoder: unit norm, right size, but every text lands near one direction.
    direction = rng.normal(size=32)
    collapsed = direction + rng.normal(0, 0.05, champion.shape)
    collapsed /= np.linalg.norm(collapsed, axis=1, keepdims=True)
    failed = cmp.compare_embeddings(collapsed, champion)
    assert not failed.passed and "collapsed" in failed.reason
    unrelated = rng.normal(size=champion.shape)  # not collapsed, but unrelated to the champion
    failed = cmp.compare_embeddings(unrelated, champion)
    assert failed.degenerate is None and "mean_cosine" in failed.reason and "neighbour_agreement" in failed.reason


def test_neighbour_agreement_by_brute_force():
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))

    def knn(m):
        u = m / np.linalg.norm(m, axis=1, keepdims=True)
        sims = u @ u.T
        return [set(sorted((j for j in range(30) if j != i), key=lambda j: -sims[i, j])[:3]) for i in range(30)]

    expected = np.mean([len(x & y) / 3 for x, y in zip(knn(a), knn(b), strict=True)])
    assert cmp.neighbour_agreement(a, b, k=3) == pytest.approx(expected)


def test_regression_error():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    report = cmp.compare_regression(y + 0.5, y + 0.1, y)
    assert report.figures["mae"] == pytest.approx(0.5)
    assert not report.passed and "mae" in report.reason
    with pytest.raises(ValueError, match="unknown output kind"):
        cmp.compare("ranking", y)


def test_evaluation_set_is_versioned_digested_and_reproducible(tmp_path):
    keys = pa.array([f"r{i}" for i in range(2_000)])
    table = pa.table({"record_id": keys, "x": np.arange(2_000, dtype=np.float32),
                      "label": pa.array(np.arange(2_000) % 2, pa.int8())})
    train, held = split(table, "record_id", 0.1)
    assert train.num_rows + held.num_rows == 2_000 and 120 < held.num_rows < 280
    assert split(table, "record_id", 0.1)[1].equals(held)  # the same cut every time
    assert without(table, "record_id", held).num_rows == train.num_rows

    store = EvaluationStore(Lake(str(tmp_path / "lake" / "pipe")))
    assert store.latest() is None
    first = store.create(held, "2026-01-01..2026-01-07", label_column="label")
    assert (first.version, first.rows) == (1, held.num_rows)
    assert store.read(store.latest()).equals(held)
    second = store.create(held.slice(0, 10), "2026-02-01..2026-02-07", label_column="label")
    assert store.versions() == [1, 2] and store.latest() == second

    outputs = pa.table({"record_id": held.column("record_id"), "score": pa.array(np.linspace(0, 1, held.num_rows),
                                                                                pa.float32())})
    digest = store.write_outputs(first, "3", outputs)
    assert output_values(store.read_outputs(first, "3", digest), "score").shape == (held.num_rows,)
    assert store.read_outputs(first, "4") is None

    path = tmp_path / "lake" / "pipe" / "_evaluation_set" / "v1" / "part-0.parquet"
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(EvaluationSetError, match="SHA-256 mismatch"):
        store.read(first)
    with pytest.raises(EvaluationSetError, match="empty"):
        store.create(held.slice(0, 0), "w")


def test_a_handful_of_rows_is_not_judged_but_says_so():
    report = cmp.compare("scores", [0.5] * 5, None)
    assert report.passed and report.reason == "insufficient sample: 5 rows < 30; not judged"
