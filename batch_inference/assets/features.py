"""`features`: DuckDB SQL feature engineering over a day of transactions."""

import time

import dagster as dg

from batch_inference.assets.checks import column_schema
from batch_inference.assets.partitions import daily_partitions
from batch_inference.features import FEATURE_COLUMNS, compute_features
from batch_inference.quality.schemas import FeaturesSchema
from batch_inference.resources import LakeResource
from batch_inference.validation import validate_partition_key


@dg.asset(
    partitions_def=daily_partitions,
    deps=["transactions"],
    kinds={"duckdb", "parquet"},
    group_name="scoring",
    code_version="1",
    metadata=column_schema(FeaturesSchema),
    description="Per-record model features (per-customer aggregates, encodings), keyed by record_id.",
)
def features(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    started = time.perf_counter()
    date = validate_partition_key(context.partition_key)
    store = lake.lake()
    table = compute_features(store.read("transactions", date))
    uri = store.write("features", date, table)
    seconds = time.perf_counter() - started
    return dg.MaterializeResult(metadata={
        "rows": table.num_rows,
        "feature_count": len(FEATURE_COLUMNS),
        "duration_seconds": round(seconds, 3),
        "rows_per_second": round(table.num_rows / seconds, 1) if seconds else 0.0,
        "path": dg.MetadataValue.path(uri),
    })
