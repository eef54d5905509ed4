"""`predictions`: score a day's features with the `champion` model through the engine."""

import time

import dagster as dg
import numpy as np
import pyarrow as pa

from batch_inference.assets.checks import column_schema, quarantine_part
from batch_inference.assets.partitions import daily_partitions
from batch_inference.ingest import QUARANTINE_SCHEMA
from batch_inference.quality.schemas import PredictionsSchema
from batch_inference.resources import LakeResource, ModelRegistryResource
from batch_inference.validation import validate_partition_key


class ScoringConfig(dg.Config):
    """Engine settings for a scoring run."""

    device: str = "auto"
    read_batch_rows: int = 16_384
    forward_rows: int = 8_192


@dg.asset(
    partitions_def=daily_partitions,
    deps=["features", "model"],
    kinds={"pytorch", "parquet"},
    group_name="scoring",
    code_version="1",
    pool="gpu",
    metadata=column_schema(PredictionsSchema),
    description="Fraud-risk scores for every record of the day, with model name, version, "
    "scored_at and run id; scored by the version the MLflow `champion` alias names at run time.",
)
def predictions(context: dg.AssetExecutionContext, config: ScoringConfig, lake: LakeResource,
                model_registry: ModelRegistryResource) -> dg.MaterializeResult:
    from batch_inference.inference.engine import (
        OUTPUT_SCHEMA,
        EngineConfig,
        InferenceEngine,
        Provenance,
        iter_batches,
    )

    started = time.perf_counter()
    date = validate_partition_key(context.partition_key)
    registry = model_registry.registry()
    loaded = registry.load(registry.require_champion())
    store = lake.lake()
    engine = InferenceEngine(loaded.model, loaded.config.features, EngineConfig(
        device=config.device, read_batch_rows=config.read_batch_rows, forward_rows=config.forward_rows))
    provenance = Provenance(loaded.ref.name, loaded.ref.version, context.run.run_id)
    rejected: list = []
    batches = iter_batches(store.parquet_file("features", date), config.read_batch_rows,
                           ["record_id", *loaded.config.features])
    with store.writer("predictions", date, OUTPUT_SCHEMA) as writer:
        result = engine.run(batches, writer.write_batch, provenance, reject=rejected.append)
    store.write("quarantine", date, _quarantine_table(rejected), part=quarantine_part("predictions"))
    seconds = time.perf_counter() - started
    latencies = np.asarray(result.batch_latencies_ms or [0.0])
    context.log.info(f"{date}: scored {result.rows_scored} rows with {loaded.ref.uri} on "
                     f"{result.device} at {result.rows_per_second:,.0f} rows/s")

    return dg.MaterializeResult(metadata={
        "rows": result.rows_scored,
        "rows_in": result.rows_in,
        "quarantined_rows": result.rows_rejected,
        "rows_per_second": round(result.rows_in / seconds, 1) if seconds else 0.0,
        "engine_rows_per_second": round(result.rows_per_second, 1),
        "duration_seconds": round(seconds, 3),
        "batch_latency_p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "batch_latency_p99_ms": round(float(np.percentile(latencies, 99)), 3),
        "model_name": loaded.ref.name,
        "model_version": loaded.ref.version,
        "model_uri": loaded.ref.uri,
        "model_weights_sha256": loaded.ref.weights_sha256 or "",
        "mlflow_run_id": loaded.ref.run_id,
        "device": result.device,
        "path": dg.MetadataValue.path(store.uri_of(store.partition_file("predictions", date))),
    })


def _quarantine_table(rejected: list) -> pa.Table:
    """The engine's rejected rows (RejectedRows chunks) as quarantine records."""
    ids = [r for chunk in rejected for r in chunk.record_ids]
    reasons = [r for chunk in rejected for r in chunk.reasons]
    return pa.table({
        "record_id": pa.array(ids, pa.string()),
        "reason": pa.array(reasons, pa.string()),
        "stage": pa.array(["predictions"] * len(ids), pa.string()),
        "original": pa.array([None] * len(ids), pa.string()),
    }, schema=QUARANTINE_SCHEMA)
