"""A wrong model never reaches serving: the promotion gate, the challenger in shadow, realized performance.

Real parts throughout: the project's definitions, a real DagsterInstance, MLflow on sqlite, the lake;
the model v1 is built by the pipeline's own model asset from labels that arrive weeks later.
"""

from __future__ import annotations

import copy
import json
import logging
import types
from pathlib import Path

import dagster as dg
import pytest
import torch

from batch_inference import serving
from batch_inference.components.promotion import evaluate_and_place
from batch_inference.definitions import build_resources
from batch_inference.defs.card_fraud.generator import write_labels
from batch_inference.defs.card_fraud.network import save_model
from batch_inference.modeling.artifact import REFERENCE_FILE
from batch_inference.modeling.evaluation import EvaluationStore
from batch_inference.modeling.promotion import GATE, TAG_EVALUATION, PromotionGate
from batch_inference.pipelines import discover, write_landing_file
from batch_inference.plugins.protocols import TrainedArtifact
from batch_inference_tests.conftest import (
    PIPELINE,
    fraud_registry,
    job,
    key,
    land_labels,
    pipeline_lake,
    project_defs,
)

TRAIN_DAYS = ("2026-01-05", "2026-01-06")
SMALL_MODEL = {"ops": {"card_fraud__model": {"config": {"params": {"epochs": 6, "hidden_sizes": [32, 32],
                                                                   "batch_size": 256}}}}}
ROWS = 10_000  # enough positives (about 2%) for a model, and an evaluation set, worth comparing


@pytest.fixture
def built(home, dagster_instance):
    """Two landed days, their labels (arriving over the next three weeks), and v1 built, evaluated on
    the fixed evaluation set and made the first champion by the model asset."""
    defs = project_defs(home)
    for day in TRAIN_DAYS:
        write_landing_file(day, ROWS, Path(home.landing_uri))
        assert defs.resolve_job_def(job("ingest_day")).execute_in_process(
            partition_key=day, instance=dagster_instance).success
    land_labels(home, dagster_instance, TRAIN_DAYS[0], "2026-01-26", ROWS)
    train = defs.resolve_job_def(job("train_model")).execute_in_process(instance=dagster_instance,
                                                                        run_config=SMALL_MODEL)
    assert train.success
    meta = train.asset_materializations_for_node("card_fraud__model")[0].metadata
    assert meta["evaluation_passed"].value is True and meta["alias_set"].value == "champion"
    assert meta["evaluation_compared_with"].value == "labels"  # the first version: labels only
    return defs


def _variant(registry, version: str, workdir: Path, change) -> str:
    """Register a changed copy of a version the way the builder would: weights, config and its own
    drift reference; returns the new version."""
    loaded = registry.load(registry.version(version))
    model = copy.deepcopy(loaded.model)
    with torch.no_grad():
        change(model)
    directory = workdir / "model"
    save_model(model, loaded.config, directory)
    (directory / REFERENCE_FILE).write_text(json.dumps(loaded.reference))
    return registry.register(TrainedArtifact(directory, registry.version(version).format)).version


def _zero_last_layer(model) -> None:
    model.net[-1].weight.zero_()
    model.net[-1].bias.zero_()


def _nudge(model) -> None:
    for parameter in model.parameters():
        parameter.mul_(1.02)


def _scramble(model) -> None:
    torch.manual_seed(3)
    for parameter in model.net.parameters():
        parameter.copy_(torch.randn_like(parameter) * 0.1)


def _evaluate(home, registry, version: str, tmp_path) -> dict:
    """What the model asset does after registering a version: the gate's evaluation-set comparison."""
    p = discover()[PIPELINE]
    store = EvaluationStore(pipeline_lake(home))
    context = types.SimpleNamespace(log=logging.getLogger("test"))
    return evaluate_and_place(p, context, store, store.latest(), registry, registry.version(version), "if_better")


def _champion_sensor(home, instance, cursor):
    resources = build_resources(home)
    ctx = dg.build_sensor_context(cursor=cursor, instance=instance,
                                  resources={k: resources[k] for k in ("lake", "model_registry")})
    return project_defs(home).resolve_sensor_def(f"{PIPELINE}_champion_sensor")(ctx)


def _served_versions(home) -> set[str]:
    con = serving.connect(home.lake_uri)
    try:
        return {r[0] for r in con.execute("SELECT DISTINCT model_version FROM card_fraud.serving_predictions").fetchall()}
    finally:
        con.close()


def test_a_degenerate_model_never_reaches_serving(home, dagster_instance, built, tmp_path):
    registry = fraud_registry(home)
    assert built.resolve_job_def(job("score_day")).execute_in_process(
        partition_key=TRAIN_DAYS[0], instance=dagster_instance).success
    broken = _variant(registry, "1", tmp_path / "broken", _zero_last_layer)  # every score 0.5
    meta = _evaluate(home, registry, broken, tmp_path)
    assert meta["evaluation_passed"] is False and meta["alias_set"] == "none"
    assert meta["evaluation_reason"].startswith("degenerate output: constant output")
    assert registry.version_tags(broken)[TAG_EVALUATION] == "failed"

    registry.set_champion(broken)  # the operator moves the alias by hand
    # A scoring run that starts before the sensor notices refuses the version, naming the gate.
    result = built.resolve_job_def(job("score_day")).execute_in_process(
        partition_key=TRAIN_DAYS[1], instance=dagster_instance, raise_on_error=False)
    assert not result.success
    error = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error
    assert f"{GATE}: v{broken} has not passed the evaluation-set comparison" in error.to_string()

    # The champion sensor refuses the move, puts the alias back and re-scores nothing.
    tick = _champion_sensor(home, dagster_instance, json.dumps({"version": "1", "phase": "done"}))
    assert isinstance(tick, dg.SkipReason)
    assert GATE in tick.skip_message and "`champion` put back to v1" in tick.skip_message
    assert registry.require_champion().version == "1"
    assert _served_versions(home) == {"1"}


def test_challenger_in_shadow_then_promotion_after_k_passes(home, dagster_instance, built, tmp_path):
    registry = fraud_registry(home)
    days = [*TRAIN_DAYS, "2026-01-07"]
    write_landing_file(days[-1], ROWS, Path(home.landing_uri))
    assert built.resolve_job_def(job("ingest_day")).execute_in_process(
        partition_key=days[-1], instance=dagster_instance).success
    v2 = _variant(registry, "1", tmp_path / "v2", _nudge)
    meta = _evaluate(home, registry, v2, tmp_path)
    assert meta["evaluation_passed"] is True and meta["alias_set"] == "challenger", meta
    assert meta["evaluation_compared_with"] == "champion and labels"
    assert registry.alias_version("challenger").version == v2

    cursor = json.dumps({"version": "1", "phase": "done"})
    for n, day in enumerate(days, start=1):
        result = built.resolve_job_def(job("score_day")).execute_in_process(partition_key=day,
                                                                            instance=dagster_instance)
        assert result.success
        check = next(e for e in result.get_asset_check_evaluations()
                     if e.check_name == "challenger_predictions_agreement")
        assert check.passed, check.metadata
        assert check.metadata["consecutive_passes"].value == n
        assert check.metadata["rank_correlation"].value > 0.99 and check.metadata["flip_rate"].value < 0.01
        shadow = pipeline_lake(home).read("challenger_predictions", day)
        assert set(shadow.column("model_version").to_pylist()) == {v2} and shadow.num_rows == ROWS
        event = dagster_instance.get_latest_materialization_event(key("challenger_predictions"))
        assert event.asset_materialization.partition == day and "psi" in event.asset_materialization.metadata
        if n == 2:  # an early move: refused, alias put back
            registry.set_champion(v2)
            tick = _champion_sensor(home, dagster_instance, cursor)
            assert isinstance(tick, dg.SkipReason)
            assert f"v{v2} has 2 of the 3 consecutive passing shadow partitions" in tick.skip_message
            assert registry.require_champion().version == "1"
    assert _served_versions(home) == {"1"}  # the challenger is never published
    registry.set_champion(v2)  # after K passes: accepted (the days are outside its 30-day re-score window)
    moved = _champion_sensor(home, dagster_instance, cursor)
    assert isinstance(moved, dg.SensorResult) and json.loads(moved.cursor)["version"] == v2
    assert registry.require_champion().version == v2
    assert PromotionGate(registry, 3).decide(v2).allowed


def test_performance_follows_labels_and_fails_for_a_degraded_model(home, dagster_instance, built, tmp_path):
    registry = fraud_registry(home)
    day = "2026-01-28"  # after the labels the fixture landed (arrivals up to the 26th)
    write_landing_file(day, ROWS, Path(home.landing_uri))  # also lands the labels known on the 10th
    for name in ("ingest_day", "score_day"):
        assert built.resolve_job_def(job(name)).execute_in_process(partition_key=day,
                                                                   instance=dagster_instance).success
    perf_key = key("performance")
    selection = dg.AssetSelection.assets(perf_key)
    asset_job = built.resolve_implicit_global_asset_job_def()
    cursor = dg.evaluate_automation_conditions(built, dagster_instance, selection).cursor
    coverage = []
    for arrival in ("2026-01-29", "2026-01-30", "2026-02-02"):  # the day's labels arrive over later days
        write_labels(arrival, arrival, ROWS, Path(home.landing_uri))
        assert built.resolve_job_def(job("labels_day")).execute_in_process(
            partition_key=arrival, instance=dagster_instance).success
        evaluation = dg.evaluate_automation_conditions(built, dagster_instance, selection, cursor=cursor)
        cursor = evaluation.cursor
        assert day in evaluation.get_requested_partitions(perf_key), arrival  # re-materialize day D
        result = asset_job.execute_in_process(asset_selection=[perf_key], partition_key=day, instance=dagster_instance)
        coverage.append(result.asset_materializations_for_node("card_fraud__performance")[0]
                        .metadata["label_coverage"].value)
    assert coverage == sorted(coverage) and coverage[0] < coverage[-1] < 1.0

    # A deliberately degraded model, promoted around the gate with the audited override.
    degraded = _variant(registry, "1", tmp_path / "degraded", _scramble)
    _evaluate(home, registry, degraded, tmp_path)
    PromotionGate(registry, 3).override(degraded, "tests", "deliberately degraded for the performance check")
    registry.set_champion(degraded)
    # Scored (its drift check may well stop the publish: the lake's predictions are what is measured).
    built.resolve_job_def(job("score_day")).execute_in_process(partition_key=day, instance=dagster_instance,
                                                               raise_on_error=False)
    land_labels(home, dagster_instance, "2026-01-31", "2026-02-27", ROWS)  # every label of the day is in
    result = asset_job.execute_in_process(asset_selection=[perf_key], partition_key=day, instance=dagster_instance)
    meta = result.asset_materializations_for_node("card_fraud__performance")[0].metadata
    assert meta["label_coverage"].value == 1.0 and meta["model_version"].value == degraded
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "vs_evaluation_set")
    assert not check.passed
    assert "< evaluation-set" in check.metadata["reason"].value


def _scores_for(home, date: str, version: str, scores) -> None:
    import pyarrow as pa

    n = len(scores)
    pipeline_lake(home).write("predictions", date, pa.table({
        "record_id": [f"{date}-{i}" for i in range(n)], "score": pa.array(scores, pa.float32()),
        "model_name": ["m"] * n, "model_version": [version] * n,
        "scored_at": pa.array([None] * n, pa.timestamp("us", tz="UTC")), "run_id": ["r"] * n}))


@pytest.mark.parametrize("agrees", [True, False])
def test_canary_compares_the_new_champion_with_the_old_champions_output(home, registry, trained_small, tmp_path,
                                                                        agrees):
    import numpy as np

    from batch_inference.components.automation import CANARY_TAG
    from batch_inference_tests.conftest import artifact_of, promote_by_hand

    recent = project_defs(home).resolve_assets_def(key("predictions")).partitions_def.get_partition_keys()[-2:]
    old = np.random.default_rng(0).beta(2, 8, 2_000)
    for d in recent:
        _scores_for(home, d, "1", old)
    with dg.instance_for_test() as instance:
        v2 = registry.register(artifact_of(trained_small, tmp_path / "v2")).version
        promote_by_hand(registry, v2)
        moved = _champion_sensor(home, instance, json.dumps({"version": "1", "phase": "done"}))
        assert [r.partition_key for r in moved.run_requests] == [recent[-1]]
        assert pipeline_lake(home).exists("_canary_baseline", recent[-1])  # the old champion's day, kept
        new = np.clip(old + 0.001, 0, 1) if agrees else np.full(len(old), 0.5)  # the canary's re-scored day
        _scores_for(home, recent[-1], v2, new)
        instance.add_run(dg.DagsterRun(job_name=job("score_day"), run_id="canary", status=dg.DagsterRunStatus.SUCCESS,
                                       tags={CANARY_TAG: f"{PIPELINE}-v{v2}-{recent[-1]}"}))
        after = _champion_sensor(home, instance, moved.cursor)
    state = json.loads(after.cursor)
    if agrees:
        assert [r.partition_key for r in after.run_requests] == recent[:-1] and state["phase"] == "done"
    else:
        assert not after.run_requests and state["phase"] == "halted"
        assert "disagrees with the old champion v1's output" in state["canary_disagreement"]
        assert "degenerate output" in state["canary_disagreement"]


def test_a_refused_move_alerts_alertmanager(home, registry, trained_small, tmp_path, monkeypatch):
    import http.server
    import threading

    from batch_inference_tests.conftest import artifact_of

    received: list = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            received.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("BATCH_INFERENCE_ALERTMANAGER_URL", f"http://127.0.0.1:{server.server_port}")
    try:
        v2 = registry.register(artifact_of(trained_small, tmp_path / "v2")).version  # never evaluated
        registry.set_champion(v2)
        with dg.instance_for_test() as instance:
            tick = _champion_sensor(home, instance, json.dumps({"version": "1", "phase": "done"}))
    finally:
        server.shutdown()
    assert isinstance(tick, dg.SkipReason) and "it was never evaluated" in tick.skip_message
    assert registry.require_champion().version == "1"
    [(path, alerts)] = received
    assert path == "/api/v2/alerts"
    assert alerts[0]["labels"]["alertname"] == "BatchInferencePromotionRefused"
    assert alerts[0]["labels"]["runbook"] == "promotion_gate" and GATE in alerts[0]["annotations"]["summary"]
