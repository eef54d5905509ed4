"""Models load without executing code, artifacts are verified, secrets stay out of logs and config."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from batch_inference.defs.card_fraud.network import MODEL_FORMAT, WEIGHTS_FILE
from batch_inference.modeling.artifact import (
    CONFIG_FILE,
    REFERENCE_FILE,
    CorruptArtifactError,
    manifest,
    sha256_file,
)
from batch_inference.modeling.registry import (
    _LOADED,
    TAG_FILES,
    TAG_FORMAT,
    UntrustedModelError,
)
from batch_inference_tests.conftest import (
    MODEL_NAME,
    artifact_of,
    fraud_registry,
    job,
    pipeline_lake,
    project_defs,
    subprocess_env,
)

BIN = Path(sys.executable).parent


class _Payload:
    """Unpickling this writes a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (Path(self.marker).write_text, ("payload ran",))


def _score_day(home, day, instance):
    return project_defs(home).resolve_job_def(job("score_day")).execute_in_process(
        partition_key=day, instance=instance, raise_on_error=False)


def _error_text(result) -> str:
    return "\n".join(e.step_failure_data.error.to_string() for e in result.all_events if e.is_step_failure)


def _ingest_and_score(home, landed, instance):
    day = landed[0]
    assert project_defs(home).resolve_job_def(job("ingest_day")).execute_in_process(
        partition_key=day, instance=instance).success
    assert _score_day(home, day, instance).success
    return day, pipeline_lake(home).read("predictions", day)


def test_tampered_weights_stop_scoring_and_leave_predictions(home, landed, registry, dagster_instance):
    instance = dagster_instance
    day, before = _ingest_and_score(home, landed, instance)
    _LOADED.clear()  # a fresh process would not have the verified model cached
    weights = next(Path(home.mlflow_artifact_root).rglob(WEIGHTS_FILE))
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    result = _score_day(home, day, instance)
    assert not result.success
    text = _error_text(result)
    expected = registry.require_champion().files[WEIGHTS_FILE]
    assert f"SHA-256 mismatch for {WEIGHTS_FILE}" in text
    assert f"expected {expected}, found {sha256_file(weights)}" in text
    assert pipeline_lake(home).read("predictions", day).equals(before)


def test_pickle_model_promoted_to_champion_is_refused_unrun(home, landed, registry, dagster_instance, tmp_path):
    instance = dagster_instance
    import mlflow
    import mlflow.pyfunc

    marker = tmp_path / "pwned"

    class Evil(mlflow.pyfunc.PythonModel):
        def __init__(self):
            self.payload = _Payload(marker)

        def predict(self, context, model_input):
            return model_input

    day, before = _ingest_and_score(home, landed, instance)
    mlflow.set_tracking_uri(home.mlflow_tracking_uri)
    mlflow.set_registry_uri(home.mlflow_tracking_uri)
    with mlflow.start_run(experiment_id=registry._experiment_id()):
        info = mlflow.pyfunc.log_model(name="model", python_model=Evil(), pip_requirements=[])
    version = mlflow.register_model(info.model_uri, MODEL_NAME).version
    registry.set_champion(str(version))
    assert not marker.exists()

    result = _score_day(home, day, instance)
    assert not result.success
    assert "is not in a format this pipeline loads" in _error_text(result)
    assert not marker.exists(), "the pickled payload ran"
    assert pipeline_lake(home).read("predictions", day).equals(before)


def _forge_version(registry, artifact: Path, files: dict[str, str]) -> str:
    """A version registered straight through MLflow, with our format tag and the given manifest."""
    client = registry.client
    run = client.create_run(registry._experiment_id())
    client.log_artifacts(run.info.run_id, str(artifact), "model")
    mv = client.create_model_version(MODEL_NAME, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
                                     tags={TAG_FORMAT: MODEL_FORMAT, TAG_FILES: json.dumps(files, sort_keys=True)})
    return str(mv.version)


def _pickled_artifact(directory: Path, marker: Path) -> Path:
    directory.mkdir()
    (directory / WEIGHTS_FILE).write_bytes(pickle.dumps(_Payload(marker)))
    (directory / CONFIG_FILE).write_text(json.dumps({"format": MODEL_FORMAT, "features": ["a"], "hidden_sizes": [2]}))
    (directory / REFERENCE_FILE).write_text(json.dumps({"features": {}}))
    return directory


def test_pickle_bytes_behind_our_tags_never_unpickle(home, registry, tmp_path):
    """Even a version forged with our format tag and correct digests cannot run code on load."""
    marker = tmp_path / "pwned"
    artifact = _pickled_artifact(tmp_path / "model", marker)
    version = _forge_version(registry, artifact, manifest(artifact))
    with pytest.raises(CorruptArtifactError) as info:  # digests matched; safetensors refused the bytes
        registry.load(registry.version(version))
    assert not isinstance(info.value, UntrustedModelError)
    assert "match their digests but do not load" in str(info.value)
    assert not marker.exists()


def test_corrupt_champion_fails_scoring_once_without_retry(home, landed, registry, dagster_instance, tmp_path):
    """A corrupt version is a permanent error: the scoring step fails at once, it is not retried."""
    marker = tmp_path / "pwned"
    day, before = _ingest_and_score(home, landed, dagster_instance)
    artifact = _pickled_artifact(tmp_path / "model", marker)
    registry.set_champion(_forge_version(registry, artifact, manifest(artifact)))
    result = _score_day(home, day, dagster_instance)
    assert not result.success
    assert "CorruptArtifactError" in _error_text(result)
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert not marker.exists()
    assert pipeline_lake(home).read("predictions", day).equals(before)


def test_version_without_a_verified_reference_is_refused(home, registry, trained_small, tmp_path):
    """The drift reference is part of every version's manifest; one registered without it is refused."""
    artifact = artifact_of(trained_small, tmp_path / "good").directory
    files = manifest(artifact)
    files.pop(REFERENCE_FILE)
    version = _forge_version(registry, artifact, files)
    with pytest.raises(UntrustedModelError, match=REFERENCE_FILE):
        registry.load(registry.version(version))


def test_pickle_deserialization_is_disabled_for_mlflow(home, monkeypatch):
    import os

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    assert fraud_registry(home).client is not None  # building the client applies the registry's settings
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"


def test_secrets_never_reach_logs_or_run_config(home, landed, registry):
    secret = "s3cr3t-VALUE-4242"
    env = {**subprocess_env(home), "AWS_SECRET_ACCESS_KEY": secret, "AWS_ACCESS_KEY_ID": "AKIATEST",
           "MLFLOW_TRACKING_PASSWORD": secret}
    proc = subprocess.run([str(BIN / "dagster"), "asset", "materialize", "-m", "batch_inference.definitions",
                           "--select", "card_fraud/transactions,card_fraud/features,card_fraud/predictions",
                           "--partition", landed[0]],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert secret not in proc.stdout + proc.stderr
    with dg.DagsterInstance.get() as inst:
        run = inst.get_runs(limit=1)[0]
        assert secret not in json.dumps(run.run_config, default=str)
        assert secret not in json.dumps(dict(run.tags))
        for record in inst.all_logs(run.run_id):
            assert secret not in (record.message or "") and secret not in repr(record.dagster_event)
    for path in Path(home.dagster_home).rglob("*"):
        if path.is_file() and path.suffix in (".out", ".err", ".log", ".complete"):
            assert secret not in path.read_text(errors="ignore"), path
