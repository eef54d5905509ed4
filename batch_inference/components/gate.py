"""The publish gate across runs: publish a partition only if the latest materialization of its
predictions has every blocking check evaluated, passed, and aimed at that materialization."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from batch_inference.dagster_compat import latest_check_executions


@dataclass
class GateResult:
    run_id: str
    storage_id: int
    checks: list[str]


def require_published_checks(instance: dg.DagsterInstance, asset_key: dg.AssetKey, check_names: list[str],
                             partition: str) -> GateResult:
    """Raise a non-retryable `dg.Failure` naming each failed, missing or stale check; else return."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1).records
    if not records:
        raise dg.Failure(f"{asset_key.to_user_string()} has no materialization for {partition}: nothing to publish",
                         allow_retries=False)
    mat = records[0]
    keys = [dg.AssetCheckKey(asset_key, name) for name in check_names]
    latest = latest_check_executions(instance, keys, partition)
    problems = []
    for key in keys:
        execution = latest.get(key)
        if execution is None or execution.planned_only:
            problems.append(f"{key.name}: not evaluated")
        elif execution.target_storage_id != mat.storage_id:
            problems.append(f"{key.name}: evaluated against an older materialization, not run {mat.run_id}")
        elif not execution.evaluation.passed and execution.evaluation.severity == dg.AssetCheckSeverity.ERROR:
            runbook = execution.evaluation.metadata.get("runbook")
            hint = f"; runbook {runbook.value}" if runbook is not None else ""
            problems.append(f"{key.name}: failed (run {execution.run_id}{hint})")
    if problems:
        hint = "" if "runbook" in " ".join(problems) else " (runbook docs/runbooks/F2.md)"
        raise dg.Failure(
            description=f"refusing to publish {asset_key.to_user_string()} {partition}: "
            + "; ".join(problems) + ". Re-materialize the partition with its checks, or re-run the checks"
            + hint + ".",
            metadata={"partition": partition, "predictions_run_id": mat.run_id}, allow_retries=False)
    return GateResult(mat.run_id, mat.storage_id, [k.name for k in keys])
