"""The store-demand example's upstream: a plain daily-partitioned Dagster asset, `store_demand/store_sales_raw`.

It stands for a feed another team owns (a point-of-sale export). It writes each day where the
platform reads upstream assets (`<lake>/store_demand/store_sales_raw/date=D/part-0.parquet`); the
pipeline's validated input depends on it and is started by declarative automation when it
materializes. Declared as the second document of this folder's `defs.yaml`.
"""

import dagster as dg
from pydantic import Field

from batch_inference.defs.store_demand.sales import generate_sales
from batch_inference.lake import lake_of_key
from batch_inference.resources import LakeResource
from batch_inference.settings import load_settings


class SalesFeedConfig(dg.Config):
    rows: int = 2_400  # rows a day: stores x 40 items


class StoreSalesFeed(dg.Component, dg.Model, dg.Resolvable):
    """A daily-partitioned source asset of synthetic store sales, written to the lake."""

    asset_key: str = Field("store_demand/store_sales_raw", description="Its key; the lake path follows it.")
    partitions_start: str = "2025-01-01"

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        key = dg.AssetKey.from_user_string(self.asset_key)
        start = load_settings().partitions_start or self.partitions_start  # the pipelines' partitions

        @dg.asset(key=key, partitions_def=dg.DailyPartitionsDefinition(start_date=start, end_offset=0),
                  group_name=key.path[0], kinds={"python", "parquet"}, code_version="1",
                  description="One day of store x item sales from the (synthetic) point-of-sale feed.")
        def _sales(context: dg.AssetExecutionContext, config: SalesFeedConfig,
                   lake: LakeResource) -> dg.MaterializeResult:
            table = generate_sales(context.partition_key, config.rows)
            store, asset = lake_of_key(lake.lake_uri, key.path)
            uri = store.write(asset, context.partition_key, table)
            return dg.MaterializeResult(metadata={"rows": table.num_rows, "path": dg.MetadataValue.path(uri)})

        return dg.Definitions(assets=[_sales])
