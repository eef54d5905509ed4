"""Kubernetes for production: per-step pod settings, and the step Jobs dagster-k8s would launch.

`predictions` steps get one NVIDIA GPU with a node selector and a toleration (via their
`dagster-k8s/config` tag); every other step asks for CPU and memory only. Every pod runs as a
non-root user, without privilege escalation, with a read-only root filesystem and all Linux
capabilities dropped; /tmp is an emptyDir.
"""

from __future__ import annotations

import copy
from typing import Any

GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

_POD_SECURITY = {
    "run_as_non_root": True,
    "run_as_user": 10001,
    "run_as_group": 10001,
    "fs_group": 10001,
    "seccomp_profile": {"type": "RuntimeDefault"},
}
_CONTAINER_SECURITY = {
    "allow_privilege_escalation": False,
    "read_only_root_filesystem": True,
    "run_as_non_root": True,
    "capabilities": {"drop": ["ALL"]},
}
_SCRATCH = {
    "volumes": [{"name": "tmp", "empty_dir": {}}],
    "volume_mounts": [{"name": "tmp", "mount_path": "/tmp"}],
}


def _base(resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "container_config": {"resources": resources, "security_context": _CONTAINER_SECURITY,
                             "volume_mounts": _SCRATCH["volume_mounts"]},
        "pod_spec_config": {"security_context": _POD_SECURITY, "volumes": _SCRATCH["volumes"]},
    }


# Executor-wide default for every step pod (merged under each op's own tag).
CPU_STEP_K8S_CONFIG: dict[str, Any] = _base({"requests": {"cpu": "1", "memory": "2Gi"},
                                             "limits": {"memory": "4Gi"}})

# The `dagster-k8s/config` tag of the `predictions` op: one GPU per partition step.
GPU_STEP_K8S_CONFIG: dict[str, Any] = copy.deepcopy(_base({
    "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
    "limits": {"memory": "32Gi", "nvidia.com/gpu": "1"},
}))
GPU_STEP_K8S_CONFIG["pod_spec_config"].update({"node_selector": GPU_NODE_SELECTOR,
                                               "tolerations": [GPU_TOLERATION]})

# Run worker pods (K8sRunLauncher) use the same hardening.
RUN_K8S_CONFIG: dict[str, Any] = _base({"requests": {"cpu": "250m", "memory": "1Gi"},
                                        "limits": {"memory": "2Gi"}})


def merge_k8s_config(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge a pipeline's `dagster-k8s/config` override into the default (dicts merge, the rest replaces)."""
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_k8s_config(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def step_job_manifests(defs, job_name: str, image: str, namespace: str = "dagster") -> dict[str, dict]:
    """The Job manifest dagster-k8s builds for each step of `job_name`, keyed by step key.

    Mirrors the k8s step handler: executor-wide `step_k8s_config` merged with the op's
    `dagster-k8s/config` tag, passed to `construct_dagster_k8s_job`, serialised like the API would.
    """
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        UserDefinedDagsterK8sConfig,
        construct_dagster_k8s_job,
        get_k8s_job_name,
        get_user_defined_k8s_config,
    )
    from kubernetes.client import ApiClient

    job = defs.resolve_job_def(job_name)
    executor_context = K8sContainerContext(
        namespace=namespace, run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(CPU_STEP_K8S_CONFIG))
    manifests = {}
    for node in job.graph.node_dict.values():
        op = node.definition
        context = executor_context.merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(op.tags)))
        job_config = DagsterK8sJobConfig(job_image=image, dagster_home="/opt/dagster/dagster_home",
                                         image_pull_policy="IfNotPresent", instance_config_map="dagster-instance")
        name = f"dagster-step-{get_k8s_job_name('0123456789abcdef', node.name)}"
        k8s_job = construct_dagster_k8s_job(
            job_config=job_config, args=["dagster", "api", "execute_step"], job_name=name, pod_name=name,
            component="step_worker", user_defined_k8s_config=context.run_k8s_config,
            labels={"dagster/job": job_name, "dagster/op": node.name},
        )
        manifests[node.name] = ApiClient().sanitize_for_serialization(k8s_job)
    return manifests
