"""`predictions`: score a day's features with the `champion` model through the engine."""

import datetime as dt
import time

import dagster as dg
import numpy as np
import pyarrow as pa

from batch_inference import ledger
from batch_inference.assets.checks import column_schema, quarantine_part
from batch_inference.assets.errors import TRANSIENT_RETRIES, permanent_errors
from batch_inference.assets.partitions import daily_partitions
from batch_inference.ingest import QUARANTINE_SCHEMA
from batch_inference.k8s import GPU_STEP_K8S_CONFIG
from batch_inference.ledger import LedgerEntry
from batch_inference.quality.schemas import PredictionsSchema
from batch_inference.resources import LakeResource, ModelRegistryResource
from batch_inference.validation import validate_partition_key


class ScoringConfig(dg.Config):
    """Engine settings for a scoring run."""

    device: str = "auto"
    read_batch_rows: int = 16_384
    forward_rows: int = 8_192
    checkpoint_rows: int = 1_048_576  # rows per committed chunk: the most a crash can cost


@dg.asset(
    partitions_def=daily_partitions,
    deps=["features", "model"],
    kinds={"pytorch", "parquet"},
    group_name="scoring",
    code_version="1",
    pool="gpu",
    op_tags={"dagster-k8s/config": GPU_STEP_K8S_CONFIG},  # one GPU pod per partition step in production
    retry_policy=TRANSIENT_RETRIES,
    metadata=column_schema(PredictionsSchema),
    description="Fraud-risk scores for every record of the day, with model name, version, "
    "scored_at and run id; scored by the version the MLflow `champion` alias names at run time. "
    "Checkpointed: a rerun after a crash resumes from the last committed chunk.",
)
def predictions(context: dg.AssetExecutionContext, config: ScoringConfig, lake: LakeResource,
                model_registry: ModelRegistryResource) -> dg.MaterializeResult:
    from batch_inference.inference.checkpoint import score_partition
    from batch_inference.inference.engine import EngineConfig, InferenceEngine, Provenance

    started_at, started = dt.datetime.now(dt.UTC), time.perf_counter()
    date = validate_partition_key(context.partition_key)
    with permanent_errors():
        registry = model_registry.registry()
        loaded = registry.load(registry.require_champion())
    store = lake.lake()
    engine = InferenceEngine(loaded.model, loaded.config.features, EngineConfig(
        device=config.device, read_batch_rows=config.read_batch_rows, forward_rows=config.forward_rows))
    model_key = {"name": loaded.ref.name, "version": loaded.ref.version, "sha256": loaded.ref.weights_sha256}
    with permanent_errors():
        scored = score_partition(engine, store, date, Provenance(loaded.ref.name, loaded.ref.version,
                                 context.run.run_id), model_key, config.read_batch_rows, config.checkpoint_rows)
    result = scored.engine
    store.write("quarantine", date, _quarantine_table(scored.rejected), part=quarantine_part("predictions"))
    seconds = time.perf_counter() - started
    output_file = store.partition_file("predictions", date)
    rows_in = result.rows_in + scored.resumed_rows
    entry = LedgerEntry(
        partition=date, run_id=context.run.run_id, model_name=loaded.ref.name, model_version=loaded.ref.version,
        artifact_sha256=loaded.ref.weights_sha256 or "", input_sha256=scored.input_sha256,
        output_sha256=store.file_digest(output_file), rows_in=rows_in,
        rows_scored=rows_in - scored.rejected.num_rows, rows_quarantined=scored.rejected.num_rows,
        rows_resumed=scored.resumed_rows, started_at=started_at, ended_at=dt.datetime.now(dt.UTC),
        device=result.device, rows_per_second=round(rows_in / seconds, 1) if seconds else 0.0)
    ledger.record(store, entry)
    latencies = np.asarray(result.batch_latencies_ms or [0.0])
    context.log.info(f"{date}: scored {result.rows_scored} rows with {loaded.ref.uri} on {result.device} "
                     f"at {result.rows_per_second:,.0f} rows/s; {scored.resumed_rows} rows resumed "
                     f"from {scored.resumed_chunks} of {scored.chunks} checkpoint(s)")
    return dg.MaterializeResult(metadata={
        "rows": entry.rows_scored,
        "rows_in": rows_in,
        "quarantined_rows": entry.rows_quarantined,
        "resumed_rows": scored.resumed_rows,
        "rows_per_second": entry.rows_per_second,
        "engine_rows_per_second": round(result.rows_per_second, 1),
        "duration_seconds": round(seconds, 3),
        "batch_latency_p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "batch_latency_p99_ms": round(float(np.percentile(latencies, 99)), 3),
        "model_name": loaded.ref.name,
        "model_version": loaded.ref.version,
        "model_uri": loaded.ref.uri,
        "model_weights_sha256": entry.artifact_sha256,
        "mlflow_run_id": loaded.ref.run_id,
        "input_sha256": entry.input_sha256,
        "output_sha256": entry.output_sha256,
        "device": result.device,
        "path": dg.MetadataValue.path(store.uri_of(output_file)),
    })


def _quarantine_table(rejected: pa.Table) -> pa.Table:
    """Rows the engine could not score, as quarantine records of the `predictions` stage."""
    n = rejected.num_rows
    return pa.table({
        "record_id": rejected.column("record_id"),
        "reason": rejected.column("reason"),
        "stage": pa.array(["predictions"] * n, pa.string()),
        "original": pa.nulls(n, pa.string()),
    }, schema=QUARANTINE_SCHEMA)
