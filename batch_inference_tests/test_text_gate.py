"""The text pipeline's promotion gate: a random-weight encoder (still 384-d, unit norm) is refused."""

from __future__ import annotations

import json
import logging
import shutil
import types
from pathlib import Path

import dagster as dg
import pytest
import torch
from safetensors.torch import load_file, save_file

from batch_inference import serving
from batch_inference.components.promotion import evaluate_and_place
from batch_inference.definitions import build_resources
from batch_inference.lake import Lake
from batch_inference.modeling.evaluation import EvaluationStore
from batch_inference.modeling.promotion import GATE
from batch_inference.pipelines import discover, write_landing_file
from batch_inference.plugins.protocols import TrainedArtifact
from batch_inference.plugins.sentence_transformer import (
    REFERENCE_FILE,
    WEIGHTS_FILE,
    SentenceTransformerFormat,
)
from batch_inference.plugins.text import encode_texts
from batch_inference.quality.embedding_drift import build_reference
from batch_inference_tests.conftest import project_defs

pytestmark = pytest.mark.integration  # MiniLM on CPU: the full tier

PIPELINE = "support_tickets"
DAYS = ["2026-03-02", "2026-03-03", "2026-03-04"]
ROWS = 150


def _random_encoder(registry, workdir: Path, texts: list[str]) -> str:
    """v1's files with every weight replaced by noise, and the drift reference of its own outputs:
    registered as the builder registers a version."""
    v1 = registry.version("1")
    local = Path(registry.client.download_artifacts(v1.run_id, "model", str(workdir / "download")))
    out = workdir / "model"
    shutil.copytree(local, out)
    torch.manual_seed(0)
    weights = {k: torch.randn_like(v) * 0.02 if v.is_floating_point() else v
               for k, v in load_file(str(out / WEIGHTS_FILE)).items()}
    save_file(weights, str(out / WEIGHTS_FILE))
    from batch_inference.plugins.sentence_transformer import file_digests

    loaded = SentenceTransformerFormat().load(out, file_digests(out))
    embeddings = encode_texts(loaded, texts)
    lengths = torch.tensor([len(t) for t in texts]).numpy()
    (out / REFERENCE_FILE).write_text(json.dumps(build_reference(embeddings, lengths, day_rows=ROWS)))
    return registry.register(TrainedArtifact(out, v1.format)).version


def test_a_random_weight_encoder_never_reaches_serving(home, dagster_instance, tmp_path):
    landing = Path(home.landing_uri)
    for day in DAYS:
        write_landing_file(day, ROWS, landing, pipeline=PIPELINE)
    defs = project_defs(home)
    tags = {"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]}
    assert defs.resolve_job_def(f"{PIPELINE}_ingest_day").execute_in_process(instance=dagster_instance,
                                                                              tags=tags).success
    train = defs.resolve_job_def(f"{PIPELINE}_train_model").execute_in_process(instance=dagster_instance)
    assert train.success
    meta = train.asset_materializations_for_node("support_tickets__model")[0].metadata
    assert meta["evaluation_passed"].value is True and meta["alias_set"].value == "champion"
    assert defs.resolve_job_def(f"{PIPELINE}_score_day").execute_in_process(
        partition_key=DAYS[0], instance=dagster_instance).success

    p = discover()[PIPELINE]
    registry = p.registry(build_resources(home)["model_registry"])
    store = EvaluationStore(Lake(f"{home.lake_uri}/{PIPELINE}"))
    texts = store.read(store.latest()).column("text").to_pylist()
    broken = _random_encoder(registry, tmp_path, [t for t in texts if t is not None])
    context = types.SimpleNamespace(log=logging.getLogger("test"))
    gated = evaluate_and_place(p, context, store, store.latest(), registry, registry.version(broken), "if_better")
    assert gated["evaluation_passed"] is False and gated["alias_set"] == "none"
    assert "mean_cosine" in gated["evaluation_reason"] or "collapsed" in gated["evaluation_reason"]

    registry.set_champion(broken)  # moved by hand
    result = defs.resolve_job_def(f"{PIPELINE}_score_day").execute_in_process(
        partition_key=DAYS[1], instance=dagster_instance, raise_on_error=False)
    assert not result.success
    error = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error
    assert f"{GATE}: v{broken} has not passed the evaluation-set comparison" in error.to_string()

    resources = build_resources(home)
    ctx = dg.build_sensor_context(instance=dagster_instance, cursor=json.dumps({"version": "1", "phase": "done"}),
                                  resources={"lake": resources["lake"], "model_registry": resources["model_registry"]})
    tick = defs.resolve_sensor_def(f"{PIPELINE}_champion_sensor")(ctx)
    assert isinstance(tick, dg.SkipReason) and GATE in tick.skip_message
    assert registry.require_champion().version == "1"
    con = serving.connect(home.lake_uri)
    try:
        served = {r[0] for r in con.execute(
            "SELECT DISTINCT model_version FROM support_tickets.serving_embeddings").fetchall()}
    finally:
        con.close()
    assert served == {"1"}
