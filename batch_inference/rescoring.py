"""Which output partitions were scored by a model version other than the champion."""

from __future__ import annotations

from batch_inference.lake import Lake


def versions_in_partition(lake: Lake, asset: str, date: str) -> set[str]:
    """The model versions that scored a committed predictions partition (footer statistics first)."""
    with lake.parquet_file(asset, date) as pf:
        index = pf.schema_arrow.get_field_index("model_version")
        versions: set[str] = set()
        for group in range(pf.metadata.num_row_groups):
            stats = pf.metadata.row_group(group).column(index).statistics
            if stats is None or not stats.has_min_max:
                return set(pf.read(columns=["model_version"]).column("model_version").unique().to_pylist())
            versions.update({str(stats.min), str(stats.max)})
        return versions


def stale_partitions(lake: Lake, asset: str, dates: list[str], champion_version: str) -> list[str]:
    """Dates (of `dates`, in order) whose committed predictions include another model version."""
    committed = set(lake.dates(asset))
    return [d for d in dates if d in committed and versions_in_partition(lake, asset, d) - {champion_version}]
