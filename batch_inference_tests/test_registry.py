"""The MLflow registry on a real sqlite tracking store."""

import numpy as np
import pytest

from batch_inference.defs.card_fraud.network import WEIGHTS_FILE
from batch_inference.defs.card_fraud.training import roc_auc, score
from batch_inference.modeling.artifact import CorruptArtifactError
from batch_inference.modeling.registry import ModelRegistryError, UntrustedModelError
from batch_inference_tests.conftest import artifact_of, fraud_registry


def test_no_champion_is_a_clear_error(home):
    reg = fraud_registry(home)
    assert reg.champion() is None
    with pytest.raises(ModelRegistryError, match="materialize the pipeline's `model` asset first"):
        reg.require_champion()


def test_register_promote_and_load_round_trip(registry, trained_small, tmp_path):
    ref = registry.require_champion()
    assert ref.version == "1" and set(ref.files) == {"weights.safetensors", "config.json", "reference.json"}
    assert all(len(d) == 64 for d in ref.files.values()) and len(ref.artifact_sha256) == 64
    loaded = registry.load(ref)
    x = trained_small.holdout_x[:500]
    np.testing.assert_allclose(score(loaded.model, x), score(trained_small.model, x), rtol=1e-6)
    assert loaded.config["features"] == trained_small.config["features"]
    assert set(loaded.reference) >= {"score", *loaded.config["features"]}
    # a second version does not move the alias until asked
    v2 = registry.register(artifact_of(trained_small, tmp_path / "v2"))
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
    expected = ref.files[WEIGHTS_FILE]
    with pytest.raises(UntrustedModelError, match=f"{WEIGHTS_FILE}: expected {expected}, found [0-9a-f]{{64}}"):
        registry.load(ref)


@pytest.mark.parametrize("emptied", ["reference.json"])
def test_a_version_without_its_drift_reference_digest_is_refused(registry, trained_small, tmp_path, emptied):
    artifact = artifact_of(trained_small, tmp_path / "artifact")
    ref = registry.register(artifact)
    tampered = type(ref)(ref.name, ref.version, ref.run_id, ref.format,
                         {k: v for k, v in ref.files.items() if k != emptied})
    with pytest.raises(UntrustedModelError, match="drift reference"):
        registry._load(tampered)


def test_a_corrupt_artifact_with_matching_digests_is_a_permanent_error(registry, trained_small, tmp_path):
    """Weights that do not parse, registered with their (matching) digests: CorruptArtifactError."""
    from batch_inference.failures import is_permanent

    artifact = artifact_of(trained_small, tmp_path / "artifact")
    (artifact.directory / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    ref = registry.register(artifact)
    with pytest.raises(CorruptArtifactError, match="do not load") as raised:
        registry.load(ref)
    assert is_permanent(raised.value)


def test_holdout_auc_beats_chance(trained_small):
    assert trained_small.metrics["holdout_auc"] > 0.7
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
