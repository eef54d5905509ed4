"""The landing sensor (new data) and the champion sensor (model promotion or rollback)."""

import datetime as dt
import json
import os

import dagster as dg
from dagster_aws.s3 import S3Resource

from batch_inference.assets.partitions import daily_partitions
from batch_inference.jobs import daily_pipeline_job, score_job
from batch_inference.landing_scan import list_filesystem, list_s3, scan_landing
from batch_inference.rescoring import stale_partitions
from batch_inference.resources import AutomationResource, LakeResource, ModelRegistryResource

CANARY_TAG = "batch_inference/canary"
# Sensors run by default so a deployed daemon picks up new files with no clicks; set
# BATCH_INFERENCE_SENSORS=stopped for an instance that must only run what it is told (e.g. a backfill box).
DEFAULT_STATUS = (dg.DefaultSensorStatus.STOPPED if os.environ.get("BATCH_INFERENCE_SENSORS") == "stopped"
                  else dg.DefaultSensorStatus.RUNNING)
TRIGGER_TAG = "batch_inference/trigger"


def _partition_keys(now: dt.datetime | None = None) -> list[str]:
    return daily_partitions.get_partition_keys(current_time=now)


@dg.sensor(job=daily_pipeline_job, default_status=DEFAULT_STATUS, minimum_interval_seconds=15,
           description="Starts land -> features -> score -> publish for each day whose landing file is new or "
           "changed; an identical re-delivery starts nothing.")
def landing_sensor(context: dg.SensorEvaluationContext, lake: LakeResource, s3: S3Resource) -> dg.SensorResult:
    if lake.landing_uri.startswith("s3://"):
        listings = list_s3(s3.get_client(), lake.landing_uri)  # ETags: nothing is downloaded
    else:
        listings = list_filesystem(*lake.landing())
    valid = set(_partition_keys())
    result = scan_landing(listings, json.loads(context.cursor or "{}"), is_valid_date=valid.__contains__)
    for name, why in result.skipped:
        context.log.warning(f"skipping landing file {name!r}: {why}")
    requests = [
        dg.RunRequest(run_key=f.run_key, partition_key=f.date,
                      tags={TRIGGER_TAG: "landing", "batch_inference/landing_file": f.name})
        for f in result.changed if f.entity == "transactions"
    ]
    for f in result.changed:
        context.log.info(f"{f.name} (digest {f.digest[:18]}) -> run for partition {f.date}")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(result.cursor, sort_keys=True))


@dg.sensor(job=score_job, default_status=DEFAULT_STATUS, minimum_interval_seconds=30,
           description="When the MLflow alias `champion` moves, re-scores the recent partitions that another "
           "version produced: one canary partition first, the rest only if its run and checks passed.")
def champion_sensor(context: dg.SensorEvaluationContext, lake: LakeResource,
                    model_registry: ModelRegistryResource, automation: AutomationResource):
    state = json.loads(context.cursor or "{}")
    champion = model_registry.registry().champion()
    if champion is None:
        return dg.SkipReason("no `champion` alias in the registry yet")
    version = champion.version

    if state.get("version") != version:
        window = _partition_keys()[-automation.rescore_window_days:]
        stale = stale_partitions(lake.lake(), window, version)
        context.log.info(f"champion is v{version} (was {state.get('version') or 'unknown'}): "
                         f"{len(stale)} partition(s) in the last {len(window)} days scored by another version")
        if not stale:
            return dg.SensorResult(cursor=json.dumps({"version": version, "phase": "done"}))
        if not automation.canary:
            return _rollout(version, stale)
        canary = stale[-1]
        request = dg.RunRequest(run_key=f"champion-v{version}-canary-{canary}", partition_key=canary,
                                tags={TRIGGER_TAG: "champion", CANARY_TAG: f"v{version}-{canary}"})
        cursor = {"version": version, "phase": "canary", "canary": canary, "rest": stale[:-1]}
        return dg.SensorResult(run_requests=[request], cursor=json.dumps(cursor))

    if state.get("phase") != "canary":
        return dg.SkipReason(f"champion v{version} unchanged; nothing to re-score ({state.get('phase')})")
    runs = context.instance.get_runs(
        filters=dg.RunsFilter(tags={CANARY_TAG: f"v{version}-{state['canary']}"}), limit=1)
    if not runs or not runs[0].is_finished:
        return dg.SkipReason(f"waiting for the canary run of {state['canary']} with v{version}")
    if runs[0].status != dg.DagsterRunStatus.SUCCESS:
        context.log.error(f"canary {state['canary']} with v{version} ended {runs[0].status.value} "
                          f"(run {runs[0].run_id}); not re-scoring the other {len(state['rest'])} partition(s)")
        return dg.SensorResult(cursor=json.dumps({**state, "phase": "halted", "canary_run": runs[0].run_id}))
    return _rollout(version, state["rest"])


def _rollout(version: str, dates: list[str]) -> dg.SensorResult:
    requests = [dg.RunRequest(run_key=f"champion-v{version}-{d}", partition_key=d,
                              tags={TRIGGER_TAG: "champion"}) for d in dates]
    return dg.SensorResult(run_requests=requests, cursor=json.dumps({"version": version, "phase": "done",
                                                                     "rescored": dates}))


nightly_schedule = dg.build_schedule_from_partitioned_job(
    daily_pipeline_job, hour_of_day=2, minute_of_hour=0, name="nightly_scoring",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="For teams whose data lands on a clock: yesterday's partition at 02:00 UTC (stopped by default).",
)

ALL_SENSORS = [landing_sensor, champion_sensor]
ALL_SCHEDULES = [nightly_schedule]
