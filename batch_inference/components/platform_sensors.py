"""Platform-wide sensors: the alert path (failed runs, failed blocking checks) and, locally, the
release of pool slots held by runs that were killed hard.

The alert path uses Dagster's own mechanisms: a `run_failure_sensor` turns each failed run into an
alert (a failed blocking check fails its run, so it arrives here too, named as a check failure),
and the routing, grouping and suppression come from `batch_inference.alerting` configured by the
YAML file in BATCH_INFERENCE_ALERTING_CONFIG. Grouping state lives in the instance's key-value
store, so the failure sensor and the flush sensor (which sends a group's follow-up when its window
closes) share it across ticks and daemon restarts.
"""

import contextlib
import json
import os
import time
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType

from batch_inference.alerting import Alert, AlertRouter, runbook_url
from batch_inference.observability import push_detection_time, push_metrics

ALERT_STATE_KEY = "batch_inference/alert_state"
CONFIG_ENV = "BATCH_INFERENCE_ALERTING_CONFIG"
PUSHGATEWAY_ENV = "BATCH_INFERENCE_PUSHGATEWAY_URL"
CHECK_RUNBOOKS = {"drift": "F5", "completeness": "F2", "schema": "F2", "model_version": "F4"}


def alert_router() -> AlertRouter | None:
    """The router from the configured YAML file, or None when alerting is not configured."""
    path = os.environ.get(CONFIG_ENV)
    return AlertRouter.from_yaml(Path(path).read_text()) if path else None


def _load_state(instance: dg.DagsterInstance) -> dict:
    raw = instance.run_storage.get_cursor_values({ALERT_STATE_KEY}).get(ALERT_STATE_KEY)
    return json.loads(raw) if raw else {}


def _save_state(instance: dg.DagsterInstance, state: dict) -> None:
    instance.run_storage.set_cursor_values({ALERT_STATE_KEY: json.dumps(state)})


def _pipeline_of(run: dg.DagsterRun) -> str:
    if run.tags.get("batch_inference/pipeline"):
        return run.tags["batch_inference/pipeline"]
    keys = sorted(run.asset_selection or [], key=lambda k: k.to_user_string())
    return keys[0].path[0] if keys and len(keys[0].path) > 1 else ""


def alerts_for_failed_run(instance: dg.DagsterInstance, run: dg.DagsterRun, message: str) -> list[Alert]:
    """One alert per failed blocking check of the run, or one run-failure alert if none failed."""
    pipeline, partition = _pipeline_of(run), run.tags.get("dagster/partition", "")
    record = instance.get_run_record_by_id(run.run_id)
    failed_at = record.end_time if record is not None and record.end_time else time.time()
    common = {"pipeline": pipeline, "partition": partition, "run_id": run.run_id, "occurred_at": failed_at,
              "backfill": "dagster/backfill" in run.tags}
    alerts = []
    for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = record.dagster_event.event_specific_data
        if evaluation.passed or evaluation.severity != dg.AssetCheckSeverity.ERROR:
            continue
        kind = next((k for k in CHECK_RUNBOOKS if evaluation.check_name.endswith(k)), "schema")
        alerts.append(Alert(kind="check_failure", title=f"{pipeline} {partition}: blocking check "
                            f"{evaluation.check_name} failed on {evaluation.asset_key.to_user_string()}",
                            runbook=runbook_url(CHECK_RUNBOOKS[kind]), **common))
    if alerts:
        return alerts
    mode = next((f"F{n}" for n in range(1, 8) if f"runbooks/F{n}.md" in message), "F1")
    return [Alert(kind="run_failure", title=f"{pipeline} {partition}: run of {run.job_name} failed: "
                  f"{message[:200]}", runbook=runbook_url(mode), **common)]


def _deliver(context, router: AlertRouter, alerts: list[Alert]) -> int:
    instance = context.instance
    notifications, state = router.process(alerts, _load_state(instance), now=time.time())
    pushgateway = os.environ.get(PUSHGATEWAY_ENV, "")
    for note in notifications:
        try:
            router.send(note)
        except OSError as exc:  # the alert path must never crash the daemon; the next tick retries groups
            context.log.error(f"alert not delivered: {exc}")
            continue
        if pushgateway and note.first_failure_at:  # M12: from the failure to its notification
            with contextlib.suppress(OSError):
                push_detection_time(pushgateway, "alerts", time.time() - note.first_failure_at, note.pipeline)
    _save_state(instance, state)
    return len(notifications)


def _status() -> dg.DefaultSensorStatus:
    configured = os.environ.get(CONFIG_ENV) or os.environ.get(PUSHGATEWAY_ENV)
    return dg.DefaultSensorStatus.RUNNING if configured else dg.DefaultSensorStatus.STOPPED


STORAGE_MARKERS = ("AccessDenied", "Access Denied", "NoSuchBucket", "SlowDown", "Throttl", "HTTP status 5",
                   "Connection reset", "Could not connect", "timed out")


def record_failure(run: dg.DagsterRun, message: str) -> None:
    """Count the failed run (M1, the success-rate SLO) and, if storage failed it, a storage error (F6)."""
    url = os.environ.get(PUSHGATEWAY_ENV)
    pipeline = _pipeline_of(run)
    if not url or not pipeline:
        return
    from batch_inference.pipelines import discover

    info = discover().get(pipeline)
    asset = info.spec.scoring.asset if info else "predictions"
    storage = int(any(marker.lower() in message.lower() for marker in STORAGE_MARKERS))
    with contextlib.suppress(OSError):  # metrics never fail the daemon
        push_metrics(url, asset, {"storage_errors": storage}, status="failure", pipeline=pipeline)


@dg.run_failure_sensor(name="alert_on_failure", default_status=_status(), minimum_interval_seconds=30,
                       description="Counts every failed run in the metrics and sends it, or the failed blocking "
                       f"checks that failed it, to the page/ticket webhooks of ${CONFIG_ENV}, grouped per "
                       "pipeline and failure kind.")
def alert_on_failure(context: dg.RunFailureSensorContext) -> None:
    message = context.failure_event.message or ""
    steps = context.instance.all_logs(context.dagster_run.run_id, of_type=DagsterEventType.STEP_FAILURE)
    details = " ".join(e.dagster_event.step_failure_data.error.to_string() for e in steps
                       if e.dagster_event and e.dagster_event.step_failure_data.error)
    record_failure(context.dagster_run, f"{message} {details}")
    router = alert_router()
    if router is None:
        return
    sent = _deliver(context, router, alerts_for_failed_run(context.instance, context.dagster_run, message))
    context.log.info(f"run {context.dagster_run.run_id}: {sent} notification(s) sent")


@dg.sensor(name="alert_flush", default_status=_status(), minimum_interval_seconds=60,
           description="Sends the grouped follow-up of an alert group whose window has closed.")
def alert_flush(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    router = alert_router()
    if router is None:
        return dg.SkipReason(f"alerting not configured (${CONFIG_ENV})")
    sent = _deliver(context, router, [])
    return dg.SkipReason(f"{sent} grouped follow-up(s) sent")


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


def platform_sensors(env: str) -> list[dg.SensorDefinition]:
    """The alert path everywhere; slot release only where runs are local processes."""
    sensors = [alert_on_failure, alert_flush]
    if env == "local":
        sensors.append(release_dead_runs)
    return sensors
