"""A pipeline's jobs, its landing sensor (or, upstream-fed, its automation sensor), its champion sensor
(with canary) and a nightly schedule."""


import json

import dagster as dg
from dagster_aws.s3 import S3Resource

from batch_inference.components.challenger import challenger_key
from batch_inference.components.performance import labels_key
from batch_inference.components.pipeline import Pipeline
from batch_inference.components.promotion import compare_canary, guard_champion_move, keep_canary_baseline
from batch_inference.landing_scan import list_filesystem, list_s3, scan_landing
from batch_inference.rescoring import stale_partitions
from batch_inference.resources import LakeResource, ModelRegistryResource
from batch_inference.settings import load_settings

CANARY_TAG = "batch_inference/canary"
TRIGGER_TAG = "batch_inference/trigger"
PIPELINE_TAG = "batch_inference/pipeline"


def default_status() -> dg.DefaultSensorStatus:
    """Sensors run by default so a deployed daemon picks up files with no clicks; set
    BATCH_INFERENCE_SENSORS=stopped for an instance that must only run what it is told."""
    stopped = load_settings().sensors_stopped
    return dg.DefaultSensorStatus.STOPPED if stopped else dg.DefaultSensorStatus.RUNNING


def build_jobs(p: Pipeline) -> dict:
    alias = p.spec.registered_model.alias
    k = p.key
    daily = [p.input_key, k(p.spec.features.asset), k(p.spec.scoring.asset), k(p.spec.serving.asset)]
    tags = {PIPELINE_TAG: p.name}
    shadow = [challenger_key(p)] if p.spec.promotion.enabled else []  # scored in the same step, never published
    jobs = {
        "ingest": dg.define_asset_job(f"{p.name}_ingest_day", selection=daily[:-2], tags=tags,
                                      description=f"{p.name}: land, validate and featurise one day."),
        "score": dg.define_asset_job(f"{p.name}_score_day", selection=daily[-2:] + shadow, tags=tags,
                                     description=f"{p.name}: score one day with `{alias}` and publish it."),
        "daily": dg.define_asset_job(f"{p.name}_daily_pipeline", selection=daily + shadow, tags=tags,
                                     description=f"{p.name}: everything for one day: land, featurise, score, "
                                     "publish."),
        "model": dg.define_asset_job(f"{p.name}_train_model", selection=[k("model")], tags=tags,
                                     description=f"{p.name}: build, register, maybe promote the model."),
    }
    if p.spec.labels is not None:
        jobs["labels"] = dg.define_asset_job(f"{p.name}_labels_day", selection=[labels_key(p)], tags=tags,
                                             description=f"{p.name}: land the labels that became known on a day.")
    return jobs


def build_landing_sensor(p: Pipeline, job, entity: str | None = None, name: str | None = None) -> dg.SensorDefinition:
    """New landing files of the input entity (or of `entity`, e.g. late labels) start `job` for their day."""
    entity = entity or p.spec.input.landing_entity

    @dg.sensor(name=name or f"{p.name}_landing_sensor", job=job, default_status=default_status(),
               minimum_interval_seconds=15,
               description=f"Starts {job.name} of {p.name} for each day whose "
               f"`{entity}_YYYY-MM-DD.parquet` is new or changed; an identical re-delivery starts nothing.")
    def _sensor(context: dg.SensorEvaluationContext, lake: LakeResource, s3: S3Resource) -> dg.SensorResult:
        if lake.landing_uri.startswith("s3://"):
            listings = list_s3(s3.get_client(), lake.landing_uri)  # ETags: nothing is downloaded
        else:
            listings = list_filesystem(*lake.landing())
        valid = set(p.partitions_def.get_partition_keys())
        result = scan_landing([x for x in listings if x.name.startswith(f"{entity}_")],
                              json.loads(context.cursor or "{}"), is_valid_date=valid.__contains__)
        for name, why in result.skipped:
            context.log.warning(f"skipping landing file {name!r}: {why}")
        requests = [dg.RunRequest(run_key=f"{p.name}:{f.run_key}", partition_key=f.date,
                                  tags={TRIGGER_TAG: "landing", "batch_inference/landing_file": f.name})
                    for f in result.changed if f.entity == entity]
        for f in result.changed:
            context.log.info(f"{f.name} (digest {f.digest[:18]}) -> run for partition {f.date}")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(result.cursor, sort_keys=True))

    return _sensor


def build_automation_sensor(p: Pipeline) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the automation conditions of an upstream-fed pipeline's daily assets (input, features,
    predictions, publish): when the upstream materializes a day, that day runs. Running by default,
    like the landing sensors; the daemon evaluates it (`auto_materialize.use_sensors`, on by default)."""
    daily = [p.input_key, p.key(p.spec.features.asset), p.key(p.spec.scoring.asset), p.key(p.spec.serving.asset)]
    return dg.AutomationConditionSensorDefinition(
        f"{p.name}_automation_sensor", target=dg.AssetSelection.assets(*daily), default_status=default_status(),
        minimum_interval_seconds=30,
        description=f"Runs {p.name}'s day when `{p.upstream_key.to_user_string()}` materializes it "
        "(declarative automation: eager on the input, features, predictions and publish).")


def build_champion_sensor(p: Pipeline, job) -> dg.SensorDefinition:
    alias, model_name = p.spec.registered_model.alias, p.spec.registered_model.registered_name

    @dg.sensor(name=f"{p.name}_champion_sensor", job=job, default_status=default_status(),
               minimum_interval_seconds=30,
               description=f"When the MLflow alias `{alias}` of `{model_name}` moves, re-scores the "
               f"recent {p.name} partitions another version produced: one canary partition first, the rest only "
               "if its run and checks passed.")
    def _sensor(context: dg.SensorEvaluationContext, lake: LakeResource, model_registry: ModelRegistryResource):
        state = json.loads(context.cursor or "{}")
        champion = p.registry(model_registry).champion()
        if champion is None:
            return dg.SkipReason(f"no `{alias}` alias on `{model_name}` yet")
        version = champion.version
        if state.get("version") != version:
            refused = guard_champion_move(p, context, p.registry(model_registry), state.get("version"), version)
            if refused:  # the alias is back where it was; the cursor stays, so nothing is re-scored
                return dg.SkipReason(refused)
            window = p.partitions_def.get_partition_keys()[-p.spec.automation.rescore_window_days:]
            stale = stale_partitions(p.lake(lake), p.spec.scoring.asset, window, version)
            context.log.info(f"{alias} is v{version} (was {state.get('version') or 'unknown'}): "
                             f"{len(stale)} partition(s) in the last {len(window)} days scored by another version")
            if not stale:
                return dg.SensorResult(cursor=json.dumps({"version": version, "phase": "done"}))
            if not p.spec.automation.canary:
                return _rollout(p, version, stale)
            canary = stale[-1]
            keep_canary_baseline(p, lake, canary)  # the old champion's output, for the canary comparison
            request = dg.RunRequest(run_key=f"{p.name}-v{version}-canary-{canary}", partition_key=canary,
                                    tags={TRIGGER_TAG: "champion", CANARY_TAG: f"{p.name}-v{version}-{canary}"})
            cursor = {"version": version, "phase": "canary", "canary": canary, "rest": stale[:-1]}
            return dg.SensorResult(run_requests=[request], cursor=json.dumps(cursor))
        if state.get("phase") != "canary":
            return dg.SkipReason(f"{alias} v{version} unchanged; nothing to re-score ({state.get('phase')})")
        runs = context.instance.get_runs(
            filters=dg.RunsFilter(tags={CANARY_TAG: f"{p.name}-v{version}-{state['canary']}"}), limit=1)
        if not runs or not runs[0].is_finished:
            return dg.SkipReason(f"waiting for the canary run of {state['canary']} with v{version}")
        if runs[0].status != dg.DagsterRunStatus.SUCCESS:
            context.log.error(f"canary {state['canary']} with v{version} ended {runs[0].status.value} "
                              f"(run {runs[0].run_id}); not re-scoring the other {len(state['rest'])} partition(s)")
            return dg.SensorResult(cursor=json.dumps({**state, "phase": "halted", "canary_run": runs[0].run_id}))
        disagreement = compare_canary(p, context, lake, state["canary"])
        if disagreement:
            return dg.SensorResult(cursor=json.dumps({**state, "phase": "halted", "canary_run": runs[0].run_id,
                                                      "canary_disagreement": disagreement[:500]}))
        return _rollout(p, version, state["rest"])

    return _sensor


def _rollout(p: Pipeline, version: str, dates: list[str]) -> dg.SensorResult:
    requests = [dg.RunRequest(run_key=f"{p.name}-v{version}-{d}", partition_key=d, tags={TRIGGER_TAG: "champion"})
                for d in dates]
    return dg.SensorResult(run_requests=requests,
                           cursor=json.dumps({"version": version, "phase": "done", "rescored": dates}))


def build_schedule(p: Pipeline, job) -> dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(
        job, hour_of_day=p.spec.automation.nightly_hour, minute_of_hour=0, name=f"{p.name}_nightly_scoring",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"For teams whose data lands on a clock: yesterday's {p.name} partition at "
        f"{p.spec.automation.nightly_hour:02d}:00 UTC (stopped by default).")
