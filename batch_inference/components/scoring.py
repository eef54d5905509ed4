"""One partition scored: resolve the champion, build the engine from the plug-ins, checkpointed
scoring, quarantine, ledger and the figures the UI plots (called by the predictions asset)."""

from __future__ import annotations

import datetime as dt
import time

import dagster as dg
import numpy as np
import pyarrow as pa

from batch_inference import ledger
from batch_inference.components.errors import classified_errors
from batch_inference.components.pipeline import QUARANTINE, Pipeline
from batch_inference.ingest import QUARANTINE_SCHEMA
from batch_inference.lake import Lake
from batch_inference.ledger import LedgerEntry
from batch_inference.observability import ProgressReporter, cost_per_million_rows, push_metrics


def score_day(p: Pipeline, date: str, context, config, lake, model_registry, observability) -> dict:
    """Score `date` of pipeline `p`; returns the materialization metadata."""
    from batch_inference.inference.checkpoint import score_partition
    from batch_inference.inference.engine import EngineConfig, InferenceEngine, Provenance

    started_at, started = dt.datetime.now(dt.UTC), time.perf_counter()
    with classified_errors("docs/runbooks/F4.md"):
        registry = p.registry(model_registry)
        loaded = registry.load(registry.require_champion())
        adapter = p.adapter(loaded)
    ref, store = loaded.ref, p.lake(lake)
    fields = {"partition": date, "model_version": ref.version, "stage": p.predictions_asset}
    read_rows = config.read_batch_rows or p.read_batch_rows
    engine = InferenceEngine(loaded.model, adapter, p.head, EngineConfig(
        device=config.device or p.device, read_batch_rows=read_rows,
        forward_rows=config.forward_rows or p.forward_rows))
    with classified_errors():
        total_rows = store.parquet_file(p.features_asset, date).metadata.num_rows
    progress = ProgressReporter(
        total_rows,
        lambda q: context.log.info(f"{p.name} {date}: {q['rows_done']:,}/{q['rows_total']:,} rows, "
                                   f"{q['rows_per_second']:,.0f} rows/s, ETA {q['eta_seconds']} s",
                                   extra={**fields, **q}),
        interval_s=observability.progress_interval_s)
    with classified_errors():
        scored = score_partition(engine, store, date, Provenance(ref.name, ref.version, context.run.run_id),
                                 {"name": ref.name, "version": ref.version, "sha256": ref.artifact_sha256},
                                 read_rows, config.checkpoint_rows or p.checkpoint_rows, source=p.features_asset,
                                 target=p.predictions_asset, progress=progress)
    store.write(QUARANTINE, date, _quarantine_table(scored.rejected, p.predictions_asset),
                part=f"part-{p.predictions_asset}.parquet")
    seconds = time.perf_counter() - started
    output_file = store.partition_file(p.predictions_asset, date)
    rows_in = scored.engine.rows_in + scored.resumed_rows
    entry = LedgerEntry(
        partition=date, run_id=context.run.run_id, model_name=ref.name, model_version=ref.version,
        artifact_sha256=ref.artifact_sha256, input_sha256=scored.input_sha256,
        output_sha256=store.file_digest(output_file), rows_in=rows_in,
        rows_scored=rows_in - scored.rejected.num_rows, rows_quarantined=scored.rejected.num_rows,
        rows_resumed=scored.resumed_rows, started_at=started_at, ended_at=dt.datetime.now(dt.UTC),
        device=scored.engine.device, rows_per_second=round(rows_in / seconds, 1) if seconds else 0.0)
    ledger.record(store, entry)
    context.log.info(f"{p.name} {date}: scored {entry.rows_scored:,} rows with {ref.uri} on {entry.device} in "
                     f"{seconds:.1f} s; {scored.resumed_rows:,} rows resumed from {scored.resumed_chunks} of "
                     f"{scored.chunks} checkpoint(s)", extra=fields)
    metadata = _metadata(p, entry, scored, seconds, store, model_registry, observability, loaded)
    if observability.pushgateway_url:
        try:
            push_metrics(observability.pushgateway_url, p.predictions_asset,
                         {k: v for k, v in metadata.items() if isinstance(v, int | float)}, device=entry.device,
                         pipeline=p.name)
        except OSError as exc:  # metrics must never fail a scoring run
            context.log.warning(f"could not push metrics to {observability.pushgateway_url}: {exc}")
    return metadata


def _metadata(p: Pipeline, entry: LedgerEntry, scored, seconds: float, store: Lake, model_registry,
              observability, loaded) -> dict:
    """Numbers the UI plots over partitions, plus provenance and links to MLflow."""
    quarantined = entry.rows_quarantined
    upstream_part = f"part-{p.input_asset}.parquet"
    if store.exists(QUARANTINE, entry.partition, upstream_part):
        quarantined += store.parquet_file(QUARANTINE, entry.partition, upstream_part).metadata.num_rows
    latencies = np.asarray(scored.engine.batch_latencies_ms or [0.0])
    tracking = model_registry.tracking_uri
    web = tracking.rstrip("/") if tracking.startswith(("http://", "https://")) else None
    ref = loaded.ref
    metadata = {
        "rows": entry.rows_scored,
        "rows_in": entry.rows_in,
        "quarantined_rows": quarantined,
        "resumed_rows": entry.rows_resumed,
        "rows_per_second": entry.rows_per_second,
        "engine_rows_per_second": round(scored.engine.rows_per_second, 1),
        "forward_seconds": round(scored.engine.forward_seconds, 3),
        "duration_seconds": round(seconds, 3),
        "batch_latency_p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "batch_latency_p99_ms": round(float(np.percentile(latencies, 99)), 3),
        "cost_per_million_rows": cost_per_million_rows(seconds, entry.rows_in,
                                                       observability.hourly_price(entry.device)),
        "model_name": ref.name,
        "model_version": ref.version,
        "model_uri": ref.uri,
        "model_artifact_sha256": entry.artifact_sha256,
        "mlflow_model_version": dg.MetadataValue.url(f"{web}/#/models/{ref.name}/versions/{ref.version}")
        if web else f"{tracking} {ref.uri}",
        "mlflow_run": dg.MetadataValue.url(
            f"{web}/#/experiments/{p.registry(model_registry).experiment_of(ref.run_id)}/runs/{ref.run_id}")
        if web else ref.run_id,
        "input_sha256": entry.input_sha256,
        "output_sha256": entry.output_sha256,
        "device": entry.device,
        "path": dg.MetadataValue.path(store.uri_of(store.partition_file(p.predictions_asset, entry.partition))),
    }
    metadata.update({k: int(v) for k, v in scored.engine.stats.items()})
    return metadata


def _quarantine_table(rejected: pa.Table, stage: str) -> pa.Table:
    """Rows the adapter refused, as quarantine records of the scoring stage."""
    n = rejected.num_rows
    return pa.table({
        "record_id": rejected.column("record_id"),
        "reason": rejected.column("reason"),
        "stage": pa.array([stage] * n, pa.string()),
        "original": pa.nulls(n, pa.string()),
    }, schema=QUARANTINE_SCHEMA)
