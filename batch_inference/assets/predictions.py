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
from batch_inference.lake import Lake
from batch_inference.ledger import LedgerEntry
from batch_inference.observability import ProgressReporter, cost_per_million_rows, push_metrics
from batch_inference.quality.schemas import PredictionsSchema
from batch_inference.resources import LakeResource, ModelRegistryResource, ObservabilityResource
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
                model_registry: ModelRegistryResource, observability: ObservabilityResource) -> dg.MaterializeResult:
    from batch_inference.inference.checkpoint import score_partition
    from batch_inference.inference.engine import EngineConfig, InferenceEngine, Provenance

    started_at, started = dt.datetime.now(dt.UTC), time.perf_counter()
    date = validate_partition_key(context.partition_key)
    with permanent_errors():
        registry = model_registry.registry()
        loaded = registry.load(registry.require_champion())
    ref, store = loaded.ref, lake.lake()
    fields = {"partition": date, "model_version": ref.version, "stage": "predictions"}
    engine = InferenceEngine(loaded.model, loaded.config.features, EngineConfig(
        device=config.device, read_batch_rows=config.read_batch_rows, forward_rows=config.forward_rows))
    progress = ProgressReporter(
        store.parquet_file("features", date).metadata.num_rows,
        lambda p: context.log.info(f"{date}: {p['rows_done']:,}/{p['rows_total']:,} rows, "
                                   f"{p['rows_per_second']:,.0f} rows/s, ETA {p['eta_seconds']} s",
                                   extra={**fields, **p}),
        interval_s=observability.progress_interval_s)
    with permanent_errors():
        scored = score_partition(engine, store, date, Provenance(ref.name, ref.version, context.run.run_id),
                                 {"name": ref.name, "version": ref.version, "sha256": ref.weights_sha256},
                                 config.read_batch_rows, config.checkpoint_rows, progress=progress)
    store.write("quarantine", date, _quarantine_table(scored.rejected), part=quarantine_part("predictions"))
    seconds = time.perf_counter() - started
    output_file = store.partition_file("predictions", date)
    rows_in = scored.engine.rows_in + scored.resumed_rows
    entry = LedgerEntry(
        partition=date, run_id=context.run.run_id, model_name=ref.name, model_version=ref.version,
        artifact_sha256=ref.weights_sha256 or "", input_sha256=scored.input_sha256,
        output_sha256=store.file_digest(output_file), rows_in=rows_in,
        rows_scored=rows_in - scored.rejected.num_rows, rows_quarantined=scored.rejected.num_rows,
        rows_resumed=scored.resumed_rows, started_at=started_at, ended_at=dt.datetime.now(dt.UTC),
        device=scored.engine.device, rows_per_second=round(rows_in / seconds, 1) if seconds else 0.0)
    ledger.record(store, entry)
    context.log.info(f"{date}: scored {entry.rows_scored:,} rows with {ref.uri} on {entry.device} in "
                     f"{seconds:.1f} s; {scored.resumed_rows:,} rows resumed from {scored.resumed_chunks} of "
                     f"{scored.chunks} checkpoint(s)", extra=fields)
    metadata = _metadata(entry, scored, seconds, store, model_registry, observability, loaded)
    if observability.pushgateway_url:
        try:
            push_metrics(observability.pushgateway_url, "predictions",
                         {k: v for k, v in metadata.items() if isinstance(v, int | float)}, device=entry.device)
        except OSError as exc:  # metrics must never fail a scoring run
            context.log.warning(f"could not push metrics to {observability.pushgateway_url}: {exc}")
    return dg.MaterializeResult(metadata=metadata)


def _metadata(entry: LedgerEntry, scored, seconds: float, store: Lake, model_registry: ModelRegistryResource,
              observability: ObservabilityResource, loaded) -> dict:
    """Numbers the UI plots over partitions, plus provenance and links to MLflow."""
    quarantined = entry.rows_quarantined
    upstream_part = quarantine_part("transactions")
    if store.exists("quarantine", entry.partition, upstream_part):
        quarantined += store.parquet_file("quarantine", entry.partition, upstream_part).metadata.num_rows
    latencies = np.asarray(scored.engine.batch_latencies_ms or [0.0])
    tracking = model_registry.tracking_uri
    web = tracking.rstrip("/") if tracking.startswith(("http://", "https://")) else None
    ref = loaded.ref
    return {
        "rows": entry.rows_scored,
        "rows_in": entry.rows_in,
        "quarantined_rows": quarantined,
        "resumed_rows": entry.rows_resumed,
        "rows_per_second": entry.rows_per_second,
        "engine_rows_per_second": round(scored.engine.rows_per_second, 1),
        "duration_seconds": round(seconds, 3),
        "batch_latency_p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "batch_latency_p99_ms": round(float(np.percentile(latencies, 99)), 3),
        "cost_per_million_rows": cost_per_million_rows(seconds, entry.rows_in,
                                                       observability.hourly_price(entry.device)),
        "model_name": ref.name,
        "model_version": ref.version,
        "model_uri": ref.uri,
        "model_weights_sha256": entry.artifact_sha256,
        "mlflow_model_version": dg.MetadataValue.url(f"{web}/#/models/{ref.name}/versions/{ref.version}")
        if web else f"{tracking} {ref.uri}",
        "mlflow_run": dg.MetadataValue.url(
            f"{web}/#/experiments/{model_registry.registry().experiment_of(ref.run_id)}/runs/{ref.run_id}")
        if web else ref.run_id,
        "input_sha256": entry.input_sha256,
        "output_sha256": entry.output_sha256,
        "device": entry.device,
        "path": dg.MetadataValue.path(store.uri_of(store.partition_file("predictions", entry.partition))),
    }


def _quarantine_table(rejected: pa.Table) -> pa.Table:
    """Rows the engine could not score, as quarantine records of the `predictions` stage."""
    n = rejected.num_rows
    return pa.table({
        "record_id": rejected.column("record_id"),
        "reason": rejected.column("reason"),
        "stage": pa.array(["predictions"] * n, pa.string()),
        "original": pa.nulls(n, pa.string()),
    }, schema=QUARANTINE_SCHEMA)
