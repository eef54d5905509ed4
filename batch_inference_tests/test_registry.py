"""The MLflow registry on a real sqlite tracking store."""

import numpy as np
import pytest

from batch_inference.modeling.artifact import WEIGHTS_FILE
from batch_inference.modeling.registry import ModelRegistry, ModelRegistryError, UntrustedModelError
from batch_inference.modeling.training import roc_auc, score


def test_no_champion_is_a_clear_error(home):
    reg = ModelRegistry(home.mlflow_tracking_uri, home.model_name, home.mlflow_artifact_root)
    assert reg.champion() is None
    with pytest.raises(ModelRegistryError, match="materialize the `model` asset first"):
        reg.require_champion()


def test_register_promote_and_load_round_trip(registry, trained_small):
    ref = registry.require_champion()
    assert ref.version == "1" and ref.weights_sha256 and len(ref.weights_sha256) == 64
    loaded = registry.load(ref)
    x = trained_small.holdout_x[:500]
    np.testing.assert_allclose(score(loaded.model, x), score(trained_small.model, x), rtol=1e-6)
    assert loaded.config.features == trained_small.config.features
    assert set(loaded.reference) >= {"score", *loaded.config.features}
    # a second version does not move the alias until asked
    v2 = registry.register(trained_small)
    assert registry.require_champion().version == "1"
    registry.set_champion(v2.version)
    assert registry.require_champion().version == "2"


def test_tampered_weights_are_refused_with_digests(registry):
    ref = registry.require_champion()
    artifact_dir = registry.client.download_artifacts(ref.run_id, "model")  # local store: returns the path
    from pathlib import Path

    stored = next(Path(registry.artifact_root).rglob(WEIGHTS_FILE))
    assert Path(artifact_dir).exists()
    data = bytearray(stored.read_bytes())
    data[-5] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(UntrustedModelError, match=f"expected {ref.weights_sha256}, found [0-9a-f]{{64}}"):
        registry.load(ref)


def test_holdout_auc_beats_chance(trained_small):
    assert trained_small.metrics["holdout_auc"] > 0.7
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
