"""Production on Kubernetes, offline: the step Jobs dagster-k8s builds from the project validate."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from batch_inference.definitions import build_definitions
from batch_inference.k8s import step_job_manifests

REPO = Path(__file__).resolve().parents[1]
JOBS = [f"card_fraud_{j}" for j in ("daily_pipeline", "ingest_day", "score_day", "train_model")]
GPU_STEP = "card_fraud__predictions"


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, dict]]:
    defs = build_definitions(env="local")  # the manifests are built offline from the ops' tags
    return {job: step_job_manifests(defs, job, "registry.example.com/batch-inference:1.0.0") for job in JOBS}


def _pod(manifest: dict) -> dict:
    return manifest["spec"]["template"]["spec"]


def test_every_step_job_validates_against_kubernetes_1_33(manifests):
    count = 0
    for steps in manifests.values():
        for manifest in steps.values():
            kubernetes_validate.validate(manifest, "1.33", strict=True)
            count += 1
    assert count >= 10


def test_gpu_only_for_predictions(manifests):
    for job, steps in manifests.items():
        for step, manifest in steps.items():
            pod = _pod(manifest)
            resources = pod["containers"][0]["resources"]
            has_gpu = "nvidia.com/gpu" in resources.get("limits", {})
            assert has_gpu == (step == GPU_STEP), (job, step)
            if has_gpu:
                assert resources["limits"]["nvidia.com/gpu"] == "1"
                assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
                assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
            else:
                assert "nodeSelector" not in pod and resources["requests"]["cpu"]


def test_every_pod_is_non_root_without_escalation(manifests):
    for steps in manifests.values():
        for manifest in steps.values():
            pod = _pod(manifest)
            assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
            container = pod["containers"][0]["securityContext"]
            assert container["allowPrivilegeEscalation"] is False
            assert container["readOnlyRootFilesystem"] is True
            assert container["capabilities"]["drop"] == ["ALL"]


def test_helm_values_wire_the_launcher_postgres_and_hardening():
    values = yaml.safe_load((REPO / "deploy/helm/values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "batch_inference.definitions"]
    env = {e["name"]: e for e in deployment["env"]}
    assert env["BATCH_INFERENCE_ENV"]["value"] == "prod"
    assert deployment["securityContext"]["runAsNonRoot"] is True
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False and values["global"]["postgresqlSecretName"]
    for name in env:  # secrets only by reference (envSecrets), never as literal values
        assert not any(word in name for word in ("SECRET", "PASSWORD", "TOKEN", "KEY_ID")), name
    assert {s["name"] for s in deployment["envSecrets"]} == {"batch-inference-aws", "batch-inference-mlflow"}
    assert "USER 10001" in (REPO / "deploy/Dockerfile").read_text()
