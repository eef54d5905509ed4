"""`transactions`: a day's landing file, typed and validated, into the lake."""

import time

import dagster as dg

from batch_inference.assets.checks import column_schema, quarantine_part
from batch_inference.assets.errors import TRANSIENT_RETRIES, permanent_errors
from batch_inference.assets.partitions import daily_partitions
from batch_inference.ingest import read_landing_file, split_valid
from batch_inference.quality.schemas import TransactionsSchema
from batch_inference.resources import LakeResource
from batch_inference.validation import validate_partition_key


@dg.asset(
    partitions_def=daily_partitions,
    kinds={"parquet", "pandas"},
    group_name="scoring",
    code_version="1",
    metadata=column_schema(TransactionsSchema),
    retry_policy=TRANSIENT_RETRIES,
    description="One day of card transactions from landing/, typed; bad rows quarantined with a reason.",
)
def transactions(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    started = time.perf_counter()
    date = validate_partition_key(context.partition_key)
    fs, _ = lake.landing()
    path = lake.landing_path("transactions", date)
    with permanent_errors():  # a bad file fails here, before anything is written, and is not retried
        table = read_landing_file(fs, path)
    valid, rejected = split_valid(table, stage="transactions")
    store = lake.lake()
    uri = store.write("transactions", date, valid)
    store.write("quarantine", date, rejected, part=quarantine_part("transactions"))
    seconds = time.perf_counter() - started
    if rejected.num_rows:
        context.log.warning(f"{date}: quarantined {rejected.num_rows} of {table.num_rows} landing rows")
    return dg.MaterializeResult(metadata={
        "rows": valid.num_rows,
        "landing_rows": table.num_rows,
        "quarantined_rows": rejected.num_rows,
        "duration_seconds": round(seconds, 3),
        "rows_per_second": round(table.num_rows / seconds, 1) if seconds else 0.0,
        "landing_file": dg.MetadataValue.path(path),
        "path": dg.MetadataValue.path(uri),
    })
