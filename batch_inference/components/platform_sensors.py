"""Platform-wide sensors: the alert path (failed runs, failed blocking checks) and, locally, the
release of pool slots held by runs that were killed hard.

The alert path: `alert_on_failure` reads the instance's run-failure events after its cursor, counts
each failed run in the metrics, turns it into Alertmanager alerts (one per failed blocking check and
day, or one for the run, naming every day of a ranged run and the runbook its error names) and posts
them to Alertmanager (`BATCH_INFERENCE_ALERTMANAGER_URL`). Alerts leave the queue only on a 2xx
answer; the queue lives in the sensor's own cursor (stored by the instance, so it survives daemon
restarts), and every tick posts what is still queued. Grouping, silences and routing are
Alertmanager's job (`deploy/alertmanager/alertmanager.yml`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import dagster as dg

from batch_inference.alerting import CHECK_FAILED, RUN_FAILED, Alert, AlertQueue, runbook_named_in
from batch_inference.components.partition_scope import failed_partitions_of_run
from batch_inference.failures import check_failure_mode
from batch_inference.observability import push_detection_time, push_metrics
from batch_inference.settings import Settings, load_settings

BACKFILL_TAG = "dagster/backfill"
FAILURES_PER_TICK = 100  # run failures turned into alerts per tick; the rest on the next ticks
DESCRIPTION_CHARS = 2000  # of a run alert's description (the failed steps' errors): the queue stays small
POST_TIMEOUT_S = 5.0  # one post to Alertmanager
STORAGE_MARKERS = ("AccessDenied", "Access Denied", "NoSuchBucket", "SlowDown", "Throttl", "HTTP status 5",
                   "Connection reset", "Could not connect", "timed out")


def run_assets(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[dg.AssetKey]:
    """The assets a run selected, or planned to materialize when it ran a whole job."""
    keys = set(run.asset_selection or ())
    if not keys:
        planned = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
        keys = {entry.dagster_event.asset_key for entry in planned if entry.dagster_event}
    return sorted((key for key in keys if key is not None), key=lambda k: k.to_user_string())


def pipeline_of(run: dg.DagsterRun, assets: list[dg.AssetKey]) -> str:
    """The run's `batch_inference/pipeline` tag, else the prefix of its assets' keys."""
    if run.tags.get("batch_inference/pipeline"):
        return run.tags["batch_inference/pipeline"]
    return assets[0].path[0] if assets and len(assets[0].path) > 1 else ""


def _step_errors(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str, str]]:
    """(step key, error message, error with its causes and traces) of each failed step of the run."""
    out = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        error = event.step_failure_data.error if event and event.step_failure_data else None
        if error is not None:
            out.append((event.step_key or "", error.message.strip(), error.to_string()))
    return out


def _failed_asset(assets: list[dg.AssetKey], step_keys: Iterable[str]) -> str:
    """The asset whose step failed (asset steps are keyed by the asset key's path joined by `__`),
    else the run's assets."""
    by_step = {"__".join(key.path): key.to_user_string() for key in assets}
    failed = [by_step[step] for step in step_keys if step in by_step]
    return ",".join(dict.fromkeys(failed)) or ",".join(key.to_user_string() for key in assets)


def _check_runbook(check_name: str, metadata: dict) -> str:
    """The failure mode a failed check names in its `runbook` metadata, else its kind's in the one
    runbook table (`failures.check_failure_mode`)."""
    named = metadata.get("runbook")
    text = getattr(named, "value", named) if named is not None else ""
    return runbook_named_in(str(text)) or check_failure_mode(check_name)


def alerts_for_failed_run(instance: dg.DagsterInstance, run: dg.DagsterRun, message: str,
                          failed_at: float) -> list[Alert]:
    """One alert per failed blocking check and day of the run, or one run alert if no check failed."""
    assets = run_assets(instance, run)
    pipeline, days = pipeline_of(run, assets), failed_partitions_of_run(instance, run)
    common = {"pipeline": pipeline, "run_id": run.run_id, "occurred_at": failed_at,
              "backfill": run.tags.get(BACKFILL_TAG, "")}
    alerts = []
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        if evaluation.passed or evaluation.severity != dg.AssetCheckSeverity.ERROR:
            continue
        asset = evaluation.asset_key.to_user_string()
        checked = (evaluation.partition,) if getattr(evaluation, "partition", None) else tuple(days)
        summary = (f"{pipeline} {', '.join(checked) or 'unpartitioned'}: blocking check "
                   f"{evaluation.check_name} failed on {asset}")
        alerts.append(Alert(alertname=CHECK_FAILED, asset=asset, check=evaluation.check_name, partitions=checked,
                            runbook=_check_runbook(evaluation.check_name, dict(evaluation.metadata or {})),
                            summary=summary, description=f"{summary} (run {run.run_id})", **common))
    if alerts:
        return alerts
    steps = _step_errors(instance, run.run_id)
    errors = " ".join(full for _, _, full in steps)
    scope = f"{len(days)} days {days[0]}..{days[-1]}" if len(days) > 1 else (days[0] if days else "unpartitioned")
    summary = f"{pipeline} {scope}: run of {run.job_name} failed"
    description = "\n".join([f"{summary} (run {run.run_id}): {message}",
                             *(f"{step}: {text}" for step, text, _ in steps)])[:DESCRIPTION_CHARS]
    return [Alert(alertname=RUN_FAILED, asset=_failed_asset(assets, (step for step, _, _ in steps)),
                  partitions=tuple(days), runbook=runbook_named_in(f"{errors} {message}") or "F1",
                  summary=summary, description=description, **common)]


def _push(log, push, *args, **kwargs) -> None:
    """A metrics push (queued and bounded by `observability`'s sender); a failure is logged, never raised."""
    try:
        push(*args, **kwargs)
    except OSError as exc:
        log.warning(f"metrics push failed: {exc}")


def _count_failure(context: dg.SensorEvaluationContext, url: str, run: dg.DagsterRun, text: str) -> None:
    """Count the failed run (M1, the success-rate SLO) and, if storage failed it, a storage error (F6)."""
    if not url:
        return
    pipeline = pipeline_of(run, run_assets(context.instance, run))
    if not pipeline:
        return
    from batch_inference.pipelines import discover

    info = discover().get(pipeline)
    asset = info.spec.scoring.asset if info else "predictions"
    storage = int(any(marker.lower() in text.lower() for marker in STORAGE_MARKERS))
    _push(context.log, push_metrics, url, asset, {"storage_errors": storage}, status="failure", pipeline=pipeline)


def _start(context: dg.SensorEvaluationContext) -> str:
    """The first tick starts after the newest failure already recorded (no alerts for old failures)."""
    newest = context.instance.fetch_run_status_changes(dg.DagsterEventType.RUN_FAILURE, limit=1)
    return newest.cursor if newest.records else ""


def evaluate_alerts(context: dg.SensorEvaluationContext, settings: Settings) -> tuple[AlertQueue, str]:
    """One tick of the alert path: new failures into the queue, then the queue to Alertmanager."""
    queue = AlertQueue.from_cursor(context.cursor)
    if queue.after is None:
        queue.after = _start(context)
        return queue, "started after the newest recorded failure"
    found = context.instance.fetch_run_status_changes(dg.DagsterEventType.RUN_FAILURE, limit=FAILURES_PER_TICK,
                                                      cursor=queue.after or None, ascending=True)
    for record in found.records:
        entry = record.event_log_entry
        run = context.instance.get_run_by_id(entry.run_id)
        if run is None:
            context.log.warning(f"failed run {entry.run_id} was deleted before it could be alerted on")
            continue
        message = entry.message or ""
        errors = " ".join(full for _, _, full in _step_errors(context.instance, run.run_id))
        _count_failure(context, settings.pushgateway_url, run, f"{message} {errors}")
        if settings.alertmanager_url:
            alerts = alerts_for_failed_run(context.instance, run, message, record.timestamp)
            for dropped in queue.add(alerts):
                context.log.error(f"alert queue full ({AlertQueue.MAX_PENDING}): dropped the oldest alert, "
                                  f"{dropped.summary} (run {dropped.run_id})")
    if found.records:
        queue.after = found.cursor
    if not settings.alertmanager_url:
        return queue, f"{len(found.records)} failure(s) counted; alerts off (BATCH_INFERENCE_ALERTMANAGER_URL unset)"
    sent, delivery = queue.flush(settings.alertmanager_url, POST_TIMEOUT_S)
    if delivery is not None and not delivery.accepted:
        context.log.warning(f"{len(queue.pending)} alert(s) not accepted by {settings.alertmanager_url} "
                            f"(status {delivery.status or 'none'}: {delivery.detail}); kept for the next tick")
    now = time.time()
    for pipeline in sorted({alert.pipeline for alert in sent}) if settings.pushgateway_url else ():
        oldest = min(alert.occurred_at for alert in sent if alert.pipeline == pipeline)  # M12: failure to AM
        _push(context.log, push_detection_time, settings.pushgateway_url, "alerts", now - oldest, pipeline)
    return queue, f"{len(found.records)} new failure(s); {len(sent)} alert(s) sent, {len(queue.pending)} queued"


def alert_sensor(default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED) -> dg.SensorDefinition:
    """The `alert_on_failure` sensor (see the module docstring)."""

    @dg.sensor(name="alert_on_failure", default_status=default_status, minimum_interval_seconds=30,
               description="Counts every failed run in the metrics and posts it, or the failed blocking checks "
               "that failed it, to Alertmanager ($BATCH_INFERENCE_ALERTMANAGER_URL); undelivered alerts stay "
               "in the cursor and are posted again on every tick until Alertmanager accepts them.")
    def alert_on_failure(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        queue, summary = evaluate_alerts(context, load_settings())
        return dg.SensorResult(skip_reason=dg.SkipReason(summary), cursor=queue.to_cursor())

    return alert_on_failure


@dg.sensor(name="release_dead_run_slots", default_status=dg.DefaultSensorStatus.RUNNING,
           minimum_interval_seconds=60,
           description="Local instances: marks runs whose processes were killed hard as failed and frees "
           "the pool slots they held, so the run queue is never blocked by a dead run.")
def release_dead_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    from batch_inference.slots import release_dead_run_slots

    released = release_dead_run_slots(context.instance)
    for run_id in released:
        context.log.warning(f"run {run_id} was dead: marked failed, pool slots freed")
    return dg.SkipReason(f"{len(released)} dead run(s) released")


def platform_sensors(env: str, settings: Settings | None = None) -> list[dg.SensorDefinition]:
    """The alert path everywhere (running by default once Alertmanager or a Pushgateway is configured);
    slot release only where runs are local processes."""
    settings = settings or load_settings()
    configured = settings.alertmanager_url or settings.pushgateway_url
    sensors = [alert_sensor(dg.DefaultSensorStatus.RUNNING if configured else dg.DefaultSensorStatus.STOPPED)]
    if env == "local":
        sensors.append(release_dead_runs)
    return sensors
