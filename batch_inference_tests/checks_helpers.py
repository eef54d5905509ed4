"""Reading asset check results back from a Dagster instance."""

from __future__ import annotations

import dagster as dg


def latest_check(instance: dg.DagsterInstance, asset: str | dg.AssetKey, name: str, partition: str | None = None):
    """The latest evaluation of a check (optionally of one partition), or None."""
    from dagster._core.event_api import PartitionKeyFilter

    asset_key = asset if isinstance(asset, dg.AssetKey) else dg.AssetKey(["card_fraud", asset])
    key = dg.AssetCheckKey(asset_key, name)
    partition_filter = PartitionKeyFilter(key=partition) if partition else None
    records = instance.event_log_storage.get_asset_check_execution_history(
        key, limit=1, partition_filter=partition_filter)
    return records[0].evaluation if records else None
