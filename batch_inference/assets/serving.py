"""`serving_predictions`: publish a checked day of predictions into the DuckDB warehouse."""

import time

import dagster as dg

from batch_inference.assets.partitions import daily_partitions
from batch_inference.resources import LakeResource, WarehouseResource
from batch_inference.validation import validate_partition_key
from batch_inference.warehouse import SERVING_TABLE, publish_predictions, refresh_views


@dg.asset(
    partitions_def=daily_partitions,
    deps=["predictions"],
    kinds={"duckdb"},
    group_name="serving",
    code_version="1",
    pool="duckdb",
    description=f"The day's predictions in the warehouse table `{SERVING_TABLE}` (published only after "
    "the blocking checks on `predictions` pass); also refreshes the warehouse's views over the lake.",
)
def serving_predictions(context: dg.AssetExecutionContext, lake: LakeResource,
                        warehouse: WarehouseResource) -> dg.MaterializeResult:
    started = time.perf_counter()
    date = validate_partition_key(context.partition_key)
    store = lake.lake()
    rows = publish_predictions(warehouse.db_path, date, store.read("predictions", date))
    views = refresh_views(warehouse.db_path, store)
    return dg.MaterializeResult(metadata={
        "rows": rows,
        "table": SERVING_TABLE,
        "views": ", ".join(views),
        "warehouse": dg.MetadataValue.path(str(warehouse.db_path)),
        "duration_seconds": round(time.perf_counter() - started, 3),
    })
