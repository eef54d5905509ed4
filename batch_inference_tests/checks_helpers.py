"""Reading asset check results back from a Dagster instance."""

from __future__ import annotations

import dagster as dg

from batch_inference.dagster_compat import latest_check_evaluation


def latest_check(instance: dg.DagsterInstance, asset: str | dg.AssetKey, name: str, partition: str | None = None):
    """The latest evaluation of a check (optionally of one partition), or None."""
    asset_key = asset if isinstance(asset, dg.AssetKey) else dg.AssetKey(["card_fraud", asset])
    return latest_check_evaluation(instance, dg.AssetCheckKey(asset_key, name), partition)
