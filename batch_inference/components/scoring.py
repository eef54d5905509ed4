"""Partitions scored: resolve the alias and load the model once per run (`open_session`), build the
engine from the plug-ins, then per day (`score_day`) checkpointed scoring, quarantine, ledger and the
figures the UI plots."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pyarrow as pa

from batch_inference import ledger
from batch_inference.components.challenger import attach_shadow, challenger_asset
from batch_inference.components.errors import classified_errors
from batch_inference.components.pipeline import LEDGER, QUARANTINE, Pipeline
from batch_inference.components.promotion import require_gate
from batch_inference.failures import RUNBOOKS
from batch_inference.ingest import QUARANTINE_SCHEMA
from batch_inference.lake import Lake
from batch_inference.ledger import LedgerEntry
from batch_inference.observability import (
    CpuTimer,
    ProgressReporter,
    cost_per_million_rows,
    freshness_lag_seconds,
    gpu_stats,
    peak_rss_bytes,
    push_metrics,
    push_progress,
)
from batch_inference.tracing import span


@dataclass
class ScoringSession:
    """What a run loads once and uses for every partition of its range: the model and the engine."""

    loaded: object
    engine: object
    read_rows: int
    checkpoint_rows: int
    shadow_ref: object = None  # the challenger scored in shadow, if any


def open_session(p: Pipeline, config, model_registry, observability) -> ScoringSession:
    """Resolve the alias, verify and load the version (its own trace span), build the engine."""
    alias, model_name = p.spec.registered_model.alias, p.spec.registered_model.registered_name
    from batch_inference.inference.engine import EngineConfig, InferenceEngine
    from batch_inference.modeling.registry import UntrustedModelError

    with classified_errors(RUNBOOKS["F4"]), span("model_load", model=model_name, alias=alias):
        registry = p.registry(model_registry)
        try:
            loaded = registry.load(registry.require_champion())
        except UntrustedModelError:
            _push_failure(p, observability, {"model_untrusted": 1})
            raise
        require_gate(p, registry, loaded.ref)  # a hand-moved alias that skipped the promotion gate
        adapter = p.adapter(loaded)
    read_rows = config.read_batch_rows or p.spec.scoring.read_batch_rows
    engine = InferenceEngine(loaded.model, adapter, p.head, EngineConfig(
        device=config.device or p.spec.scoring.device, read_batch_rows=read_rows,
        forward_rows=config.forward_rows or p.spec.scoring.forward_rows), key=p.row_key)
    with classified_errors(RUNBOOKS["F4"]), span("model_load", model=model_name, alias="challenger"):
        shadow_ref = attach_shadow(p, registry, engine, loaded.ref)
    return ScoringSession(loaded, engine, read_rows, config.checkpoint_rows or p.spec.scoring.checkpoint_rows,
                          shadow_ref)


def _push_quietly(push, *args, **kwargs) -> None:
    with contextlib.suppress(OSError):
        push(*args, **kwargs)


def _push_failure(p: Pipeline, observability, values: dict) -> None:
    if observability.pushgateway_url:
        with contextlib.suppress(OSError):  # metrics never fail a run; its own failure is what matters
            push_metrics(observability.pushgateway_url, p.spec.scoring.asset, values, status="failure",
                         pipeline=p.name)


def score_day(p: Pipeline, date: str, session: ScoringSession, context, lake, model_registry, observability,
              reuse_committed: bool) -> dict:
    """Score one day with the session's model; returns the day's metadata.

    With `reuse_committed` (a ranged run, `PartitionScope.reuse_committed`) a day already committed
    under the same fingerprint (input, model, chunking) is kept, so a range rerun after a crash redoes
    only what was not committed, and the interrupted day resumes from its checkpoints.
    """
    with span("partition", partition=date):
        return _score_day(p, date, session, context, lake, model_registry, observability, reuse_committed)


def _score_day(p: Pipeline, date: str, session: ScoringSession, context, lake, model_registry, observability,
               reuse_committed: bool) -> dict:
    from batch_inference.inference.checkpoint import score_partition
    from batch_inference.inference.engine import Provenance

    started_at, started = dt.datetime.now(dt.UTC), time.perf_counter()
    loaded, engine = session.loaded, session.engine
    ref, store = loaded.ref, p.lake(lake)
    fields = {"partition": date, "model_version": ref.version, "stage": p.spec.scoring.asset}
    with classified_errors():
        total_rows = store.num_rows(p.spec.features.asset, date)
    device = str(engine.device)

    def report(q: dict) -> None:
        context.log.info(f"{p.name} {date}: {q['rows_done']:,}/{q['rows_total']:,} rows, "
                         f"{q['rows_per_second']:,.0f} rows/s, ETA {q['eta_seconds']} s", extra={**fields, **q})
        if observability.pushgateway_url:  # the heartbeat of a long partition: a stuck run stops it (F7)
            threading.Thread(target=_push_quietly, daemon=True, name="bi-progress-push", args=(
                push_progress, observability.pushgateway_url, p.spec.scoring.asset, q["rows_done"], q["rows_total"]),
                kwargs={"pipeline": p.name, "device": device}).start()  # never stalls the forward loop

    progress = ProgressReporter(total_rows, report, interval_s=observability.progress_interval_s)
    # Keep a committed partition only if its run also finished the bookkeeping (a crash between the
    # commit and the ledger record must not leave a partition without provenance or quarantine).
    reuse = reuse_committed and _fully_recorded(p, store, date)
    with classified_errors(), CpuTimer() as cpu:
        scored = score_partition(engine, store, date, Provenance(ref.name, ref.version, context.run.run_id),
                                 {"name": ref.name, "version": ref.version, "sha256": ref.artifact_sha256},
                                 session.read_rows, session.checkpoint_rows, source=p.spec.features.asset,
                                 target=p.spec.scoring.asset, progress=progress, reuse_committed=reuse,
                                 **_shadow_target(p, session, context))
    if scored.reused:
        context.log.info(f"{p.name} {date}: already committed with this input and {ref.uri}; kept as it is",
                         extra=fields)
        return _reused_metadata(p, store, date, ref, scored, time.perf_counter() - started)
    store.write(QUARANTINE, date, _quarantine_table(scored.rejected, p.spec.scoring.asset),
                part=f"part-{p.spec.scoring.asset}.parquet")
    seconds = time.perf_counter() - started
    output_file = store.partition_file(p.spec.scoring.asset, date)
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
    metadata["cpu_utilization_ratio"] = round(cpu.utilization, 4)
    metadata["memory_peak_bytes"] = peak_rss_bytes()
    metadata.update({k: v for k, v in gpu_stats(entry.device).items() if v is not None})
    newest = _newest_event(p, store, date)
    if newest is not None:
        metadata["newest_event_time"] = newest.isoformat()
        metadata["scoring_freshness_lag_seconds"] = round(freshness_lag_seconds(newest, entry.ended_at), 3)
    metadata["provenance_completeness_ratio"] = 1.0 if entry.artifact_sha256 and entry.input_sha256 else 0.0
    if observability.pushgateway_url:
        url = observability.pushgateway_url
        try:
            push_metrics(url, p.spec.scoring.asset, {k: v for k, v in metadata.items() if isinstance(v, int | float)},
                         device=entry.device, pipeline=p.name,
                         batch_durations_s=[ms / 1000 for ms in scored.engine.batch_latencies_ms])
            push_progress(url, p.spec.scoring.asset, rows_in, rows_in, running=False, pipeline=p.name, device=device)
        except OSError as exc:  # metrics must never fail a scoring run
            context.log.warning(f"could not push metrics to {url}: {exc}")
    return metadata


def _shadow_target(p: Pipeline, session: ScoringSession, context) -> dict:
    """Where the challenger's outputs of the same batches go (nothing without a challenger)."""
    from batch_inference.inference.engine import Provenance

    ref = session.shadow_ref
    if ref is None:
        return {}
    return {"shadow_target": challenger_asset(p),
            "shadow_provenance": Provenance(ref.name, ref.version, context.run.run_id)}


def _newest_event(p: Pipeline, store: Lake, date: str) -> dt.datetime | None:
    """The newest input event time of the day (feature freshness), if the pipeline has an event time."""
    if not p.spec.input.event_time or not store.exists(p.spec.input.asset, date):
        return None
    import pyarrow.compute as pc

    newest = None
    with store.parquet_file(p.spec.input.asset, date) as parquet:
        for group in range(parquet.num_row_groups):  # row group by row group: memory does not grow with the day
            value = pc.max(parquet.read_row_group(group, columns=[p.spec.input.event_time]).column(0)).as_py()
            newest = value if newest is None or (value is not None and value > newest) else newest
    return newest


def _metadata(p: Pipeline, entry: LedgerEntry, scored, seconds: float, store: Lake, model_registry,
              observability, loaded) -> dict:
    """Numbers the UI plots over partitions, plus provenance and links to MLflow."""
    quarantined = entry.rows_quarantined
    upstream_part = f"part-{p.spec.input.asset}.parquet"
    if store.exists(QUARANTINE, entry.partition, upstream_part):
        quarantined += store.num_rows(QUARANTINE, entry.partition, upstream_part)
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
        "path": dg.MetadataValue.path(store.uri_of(store.partition_file(p.spec.scoring.asset, entry.partition))),
    }
    metadata.update({k: int(v) for k, v in scored.engine.stats.items()})
    return metadata


def _fully_recorded(p: Pipeline, store: Lake, date: str) -> bool:
    """The committed output has its quarantine file and a ledger record naming its digest."""
    if not store.exists(p.spec.scoring.asset, date) or not store.exists(
            QUARANTINE, date, f"part-{p.spec.scoring.asset}.parquet"):
        return False
    digest = store.file_digest(store.partition_file(p.spec.scoring.asset, date))
    for name in store.list_files(store.partition_dir(LEDGER, date)):
        if name.endswith(".parquet") and store.read(LEDGER, date, ["output_sha256"], part=name).column(0)[0].as_py() \
                == digest:
            return True
    return False


def _reused_metadata(p: Pipeline, store: Lake, date: str, ref, scored, seconds: float) -> dict:
    """Figures of a partition a resumed range kept: what is committed, and that it was reused."""
    rows = store.num_rows(p.spec.scoring.asset, date)
    return {"rows": rows, "rows_in": scored.resumed_rows, "resumed_rows": scored.resumed_rows,
            "reused_committed_partition": True, "model_name": ref.name, "model_version": ref.version,
            "model_uri": ref.uri, "model_artifact_sha256": ref.artifact_sha256, "input_sha256": scored.input_sha256,
            "duration_seconds": round(seconds, 3),
            "path": dg.MetadataValue.path(store.uri_of(store.partition_file(p.spec.scoring.asset, date)))}


def _quarantine_table(rejected: pa.Table, stage: str) -> pa.Table:
    """Rows the adapter refused, as quarantine records of the scoring stage."""
    n = rejected.num_rows
    return pa.table({
        "record_id": rejected.column("record_id"),
        "reason": rejected.column("reason"),
        "stage": pa.array([stage] * n, pa.string()),
        "original": pa.nulls(n, pa.string()),
    }, schema=QUARANTINE_SCHEMA)
