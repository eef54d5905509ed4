"""The pipeline's assets: input, features, model, predictions and the serving publish.

Each asset is short: resolve names, call the library, write, report metadata. What the rows
mean comes from the pipeline's plug-ins.
"""


import datetime as dt
import tempfile
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batch_inference import serving
from batch_inference.components.checks import schema_check_specs, schema_checks, upstream_check_names
from batch_inference.components.errors import TRANSIENT_RETRIES, classified_errors
from batch_inference.components.gate import require_published_checks
from batch_inference.components.metadata import column_schema
from batch_inference.components.partition_scope import (
    INPUT_BACKFILL_POLICY,
    materialize,
    partition_history,
    scope_of,
)
from batch_inference.components.performance import has_labels, labels_key, read_labels
from batch_inference.components.pipeline import LEDGER, QUARANTINE, Pipeline
from batch_inference.components.promotion import cut_evaluation_set, evaluate_and_place, evaluation_store
from batch_inference.components.scoring import open_session, score_day
from batch_inference.conform import conform_table
from batch_inference.failures import RUNBOOKS
from batch_inference.features import copy_feature_sql
from batch_inference.ingest import QUARANTINE_SCHEMA, open_landing_file, screen_batches, screen_rows
from batch_inference.lake import ROW_GROUP_ROWS
from batch_inference.observability import (
    freshness_lag_seconds,
    partition_start_timestamp,
    push_metrics,
    recovery_time_seconds,
)
from batch_inference.resources import (
    LakeResource,
    ModelRegistryResource,
    ObservabilityResource,
    WarehouseResource,
)
from batch_inference.tracing import span
from batch_inference.validation import validate_partition_key


def quarantine_part(stage: str) -> str:
    """File name of one stage's rejected rows inside `<pipeline>/quarantine/date=D/`."""
    return f"part-{stage}.parquet"


def build_input_asset(p: Pipeline) -> dg.AssetsDefinition:
    """The validated input: from the day's landing file, or from the upstream asset's partition."""
    return _landing_input_asset(p) if p.upstream_key is None else _upstream_input_asset(p)


def _landing_input_asset(p: Pipeline) -> dg.AssetsDefinition:
    @dg.asset(
        key=p.key(p.spec.input.asset), partitions_def=p.partitions_def, kinds={"parquet", "pandas"},
        group_name=p.group,
        code_version="2", metadata=column_schema(p.rules), retry_policy=TRANSIENT_RETRIES,
        backfill_policy=INPUT_BACKFILL_POLICY, output_required=False,
        check_specs=schema_check_specs(p, p.spec.input.asset, p.rules),
        description=f"One day of `{p.spec.input.landing_entity}` landing files, typed strictly; rows that break the "
        "input schema's row rules quarantined with a reason.",
    )
    def _input(context: dg.AssetExecutionContext, lake: LakeResource):
        yield from materialize(context, scope_of(context), context.asset_key, lambda date: _land(context, lake, date),
                               schema_checks(p, p.spec.input.asset, p.rules, lake), gated_by=p.key(p.spec.serving.asset))

    def _land(context, lake: LakeResource, date: str) -> dict:
        started = time.perf_counter()
        fs, root = lake.landing()
        path = lake.landing_path(p.spec.input.landing_entity, date)
        store = p.lake(lake)
        landing_rows = valid_rows = quarantined_rows = 0
        first_reason, newest = None, None
        # Streamed batch by batch into the two partitions, committed together once the whole file is
        # screened: a bad file fails here and nothing is written.
        with classified_errors(RUNBOOKS["F2"]):
            landing = open_landing_file(fs, path, p.arrow_schema, root=root)
            batches = screen_batches(landing, p.rules, stage=p.spec.input.asset, key=p.spec.input.key,
                                     event_time=p.spec.input.event_time, date=date,
                                     tolerance=dt.timedelta(hours=p.spec.input.event_time_tolerance_hours))
            with store.writer(p.spec.input.asset, date, landing.schema) as valid_out, \
                    store.writer(QUARANTINE, date, QUARANTINE_SCHEMA,
                                 part=quarantine_part(p.spec.input.asset)) as rejected_out:
                for valid, rejected in batches:
                    landing_rows += valid.num_rows + rejected.num_rows
                    valid_rows, quarantined_rows = valid_rows + valid.num_rows, quarantined_rows + rejected.num_rows
                    if valid.num_rows:
                        valid_out.write_table(valid, row_group_size=ROW_GROUP_ROWS)
                    if rejected.num_rows:
                        rejected_out.write_table(rejected)
                        first_reason = first_reason or rejected.column("reason")[0]
                    if p.spec.input.event_time and valid.num_rows:
                        batch_newest = pc.max(valid.column(p.spec.input.event_time)).as_py()
                        newest = max(newest, batch_newest) if newest and batch_newest else newest or batch_newest
            landing.close()
        uri = store.uri_of(store.partition_file(p.spec.input.asset, date))
        seconds = time.perf_counter() - started
        if quarantined_rows:
            context.log.warning(f"{p.name} {date}: quarantined {quarantined_rows} of {landing_rows} landing "
                                f"rows, e.g. {first_reason}")
        metadata = {
            "rows": valid_rows, "landing_rows": landing_rows, "quarantined_rows": quarantined_rows,
            "duration_seconds": round(seconds, 3),
            "rows_per_second": round(landing_rows / seconds, 1) if seconds else 0.0,
            "landing_file": dg.MetadataValue.path(path), "path": dg.MetadataValue.path(uri),
        }
        if p.spec.input.event_time and valid_rows:
            metadata["newest_event_time"] = newest.isoformat() if newest else ""
        return metadata

    return _input


def upstream_automation(p: Pipeline) -> dg.AutomationCondition | None:
    """Upstream-fed pipelines run by declarative automation: each daily asset is requested when what it
    reads was updated (the model is left out: a new champion is the champion sensor's business)."""
    if p.upstream_key is None:
        return None
    return dg.AutomationCondition.eager().ignore(dg.AssetSelection.assets(p.key("model")))


def _upstream_input_asset(p: Pipeline) -> dg.AssetsDefinition:
    upstream = p.upstream_key.to_user_string()

    @dg.asset(
        key=p.input_key, deps=[p.upstream_key], partitions_def=p.partitions_def, kinds={"parquet", "pandas"},
        group_name=p.group, code_version="2", metadata=column_schema(p.rules), retry_policy=TRANSIENT_RETRIES,
        backfill_policy=INPUT_BACKFILL_POLICY, output_required=False, automation_condition=upstream_automation(p),
        check_specs=schema_check_specs(p, p.spec.input.asset, p.rules),
        description=f"One day of the upstream asset `{upstream}` (read from the lake), typed strictly; rows that "
        "break the input schema's row rules quarantined with a reason. Runs when the upstream materializes.",
    )
    def _input(context: dg.AssetExecutionContext, lake: LakeResource):
        yield from materialize(context, scope_of(context), context.asset_key, lambda date: _take(context, lake, date),
                               schema_checks(p, p.spec.input.asset, p.rules, lake), gated_by=p.key(p.spec.serving.asset))

    def _take(context, lake: LakeResource, date: str) -> dict:
        started = time.perf_counter()
        source, asset = p.upstream_lake(lake)
        path = source.partition_file(asset, date)
        with classified_errors(RUNBOOKS["F2"]):
            table = source.read(asset, date)
            if p.arrow_schema is not None:
                table = conform_table(table, p.arrow_schema, source.uri_of(path))
        valid, rejected = _screen(p, table, date)
        store = p.lake(lake)
        uri = store.write(p.spec.input.asset, date, valid)
        store.write(QUARANTINE, date, rejected, part=quarantine_part(p.spec.input.asset))
        seconds = time.perf_counter() - started
        if rejected.num_rows:
            context.log.warning(f"{p.name} {date}: quarantined {rejected.num_rows} of {table.num_rows} rows of "
                                f"{upstream}, e.g. {rejected.column('reason')[0]}")
        return {
            "rows": valid.num_rows, "upstream_rows": table.num_rows, "quarantined_rows": rejected.num_rows,
            "duration_seconds": round(seconds, 3),
            "rows_per_second": round(table.num_rows / seconds, 1) if seconds else 0.0,
            "upstream_asset": upstream, "upstream_file": dg.MetadataValue.path(source.uri_of(path)),
            "path": dg.MetadataValue.path(uri),
        }

    return _input


def _screen(p: Pipeline, table: pa.Table, date: str) -> tuple[pa.Table, pa.Table]:
    """The input's row screen (text, key, event time, the rules): (valid, quarantined with a reason)."""
    with classified_errors(RUNBOOKS["F2"]):
        return screen_rows(table, p.rules, stage=p.spec.input.asset, key=p.spec.input.key,
                           event_time=p.spec.input.event_time, date=date,
                           tolerance=dt.timedelta(hours=p.spec.input.event_time_tolerance_hours))


def build_features_asset(p: Pipeline) -> dg.AssetsDefinition:
    source = p.spec.input.asset

    @dg.asset(
        key=p.key(p.spec.features.asset), deps=[p.input_key], partitions_def=p.partitions_def,
        kinds={"duckdb", "parquet"} if p.spec.features.sql else {"python", "parquet"}, group_name=p.group,
        code_version="2", metadata=column_schema(p.features_schema), backfill_policy=p.backfill_policy,
        retry_policy=TRANSIENT_RETRIES, output_required=False, automation_condition=upstream_automation(p),
        check_specs=schema_check_specs(p, p.spec.features.asset, p.features_schema),
        description=f"Model features of `{p.input_key.to_user_string()}`, keyed by {p.row_key}"
        + (f" (SQL: {p.spec.features.sql})." if p.spec.features.sql else f" ({p.spec.features.callable})."),
    )
    def _features(context: dg.AssetExecutionContext, lake: LakeResource):
        yield from materialize(context, scope_of(context), context.asset_key, lambda date: _compute(lake, date),
                               schema_checks(p, p.spec.features.asset, p.features_schema, lake),
                               gated_by=p.key(p.spec.serving.asset))

    def _compute(lake: LakeResource, date: str) -> dict:
        started = time.perf_counter()
        reader = p.lake(lake)  # the pipeline's own, validated input (also when fed by an upstream asset)
        store, asset, row_groups = p.lake(lake), p.spec.features.asset, p.spec.features.row_group_rows
        local_input = reader.local_path(source, date)
        if p.spec.features.sql and local_input is not None and store.is_local:
            # Streamed: DuckDB reads the input file and COPYs the features to the partition, in bounded memory.
            if not reader.exists(source, date):
                reader.parquet_file(source, date)  # raises the lake's "no partition" error
            with classified_errors(), store.partition_path(asset, date) as staging:
                rows = copy_feature_sql(p.feature_sql, local_input, staging, row_groups)
            uri = store.uri_of(store.partition_file(asset, date))
            columns = len(pq.read_schema(store.partition_file(asset, date)).names)
        else:
            with classified_errors():
                table = p.feature_fn(reader.read(source, date))
            uri = store.write(asset, date, table, row_group_rows=row_groups)
            rows, columns = table.num_rows, table.num_columns
        seconds = time.perf_counter() - started
        return {
            "rows": rows, "feature_count": columns - 1,
            "duration_seconds": round(seconds, 3),
            "rows_per_second": round(rows / seconds, 1) if seconds else 0.0,
            "path": dg.MetadataValue.path(uri),
        }

    return _features


class ModelBuildConfig(dg.Config):
    """Which days the model builder sees, how it trains, and when the alias moves."""

    training_days: int | None = None  # default: the pipeline's YAML
    end_date: str | None = None  # last day of the window; default: the latest features partition
    params: dict = {}  # merged over the YAML's model.params
    promote: str | None = None  # if_better | always | never; default: the YAML's


def build_model_asset(p: Pipeline) -> dg.AssetsDefinition | dg.AssetSpec:
    """The registered model. Without a builder it is an external asset: versions come from outside."""
    alias, model_name = p.spec.registered_model.alias, p.spec.registered_model.registered_name
    if p.spec.registered_model.builder is None:
        return dg.AssetSpec(p.key("model"), group_name=p.group, kinds={"mlflow"},
                            description=f"MLflow registered model `{model_name}`, alias `{alias}`; "
                            "versions are registered from outside the platform.")

    @dg.asset(
        key=p.key("model"), deps=[p.key(p.spec.features.asset), *([labels_key(p)] if has_labels(p) else [])],
        kinds={"mlflow", "pytorch"}, group_name=p.group,
        code_version="2", retry_policy=TRANSIENT_RETRIES,
        description=f"Built by {p.spec.registered_model.builder}, registered in MLflow as `{model_name}`; the "
        f"`{alias}` alias moves to it only when it beats the current one on held-out data.",
    )
    def _model(context: dg.AssetExecutionContext, config: ModelBuildConfig, lake: LakeResource,
               model_registry: ModelRegistryResource) -> dg.MaterializeResult:
        from batch_inference.plugins.protocols import TrainingRequest

        started = time.perf_counter()
        store = p.lake(lake)
        dates = store.dates(p.spec.features.asset)
        if config.end_date:
            end = validate_partition_key(config.end_date)
            dates = [d for d in dates if d <= end]
        window = dates[-(config.training_days or p.spec.registered_model.training_days):]
        features = pa.concat_tables(store.read(p.spec.features.asset, d) for d in window) if window else None
        registry = p.registry(model_registry)
        labels = read_labels(p, lake, window[0], window[-1]) if has_labels(p) and window else None
        # The fixed evaluation set is cut from the first window; the builder never sees its rows.
        evaluation, features = cut_evaluation_set(p, evaluation_store(p, lake), features, labels, window, context)
        with tempfile.TemporaryDirectory(prefix=f"bi-build-{p.name}-") as tmp:
            request = TrainingRequest(features, window, {**p.spec.registered_model.params, **config.params},
                                      Path(tmp), key=p.row_key, labels=labels)
            with classified_errors():
                artifact = p.builder(request)
                ref = registry.register(artifact)
            champion = registry.champion()
            champion_score = new_score = None
            if evaluation is not None:  # the promotion gate decides, on the fixed evaluation set
                gated = evaluate_and_place(p, context, evaluation_store(p, lake), evaluation, registry, ref,
                                           config.promote or p.spec.registered_model.promote)
            elif artifact.evaluate is not None:
                new_score = artifact.evaluate(registry.load(ref).artifact)
                if champion is not None and champion.version != ref.version:
                    try:
                        champion_score = artifact.evaluate(registry.load(champion).artifact)
                    except Exception as exc:  # an unusable champion is replaced by a good candidate
                        context.log.warning(f"current {alias} v{champion.version} could not be "
                                            f"evaluated: {exc}")
                        champion_score = float("-inf")
        policy = config.promote or p.spec.registered_model.promote
        # if_better: a candidate replaces a champion only when it scores higher on the builder's held-out
        # data; a builder without `evaluate` can only fill an empty alias.
        promote = policy == "always" or (policy == "if_better" and (champion is None or (
            new_score is not None and (champion_score is None or new_score > champion_score))))
        if evaluation is not None:
            promote = False  # done by the gate above
        if promote:
            registry.set_champion(ref.version)
            context.log.info(f"{alias} -> {ref.name} v{ref.version}"
                             + (f" (held-out score {new_score:.4f})" if new_score is not None else ""))
        metadata = {
            "model_name": ref.name, "model_version": ref.version, "promoted": promote,
            "champion_version": ref.version if promote else (champion.version if champion else ""),
            "training_window": f"{window[0]}..{window[-1]}" if window else "",
            "artifact_sha256": ref.artifact_sha256, "files": len(ref.files), "model_uri": ref.uri,
            "mlflow_run_id": ref.run_id, "duration_seconds": round(time.perf_counter() - started, 3),
            **{k: round(float(v), 5) for k, v in artifact.metrics.items()},
        }
        if evaluation is not None:
            metadata.update(gated)
        if new_score is not None:
            metadata["holdout_score"] = round(new_score, 5)
        if champion_score is not None:
            metadata["champion_holdout_score"] = round(champion_score, 5)
        return dg.MaterializeResult(metadata=metadata)

    return _model


class ScoringConfig(dg.Config):
    """Engine settings for a scoring run; unset values come from the pipeline's YAML."""

    device: str | None = None
    read_batch_rows: int | None = None
    forward_rows: int | None = None
    checkpoint_rows: int | None = None  # rows per committed chunk: the most a crash can cost


def build_predictions_asset(p: Pipeline) -> dg.AssetsDefinition:
    alias, model_name = p.spec.registered_model.alias, p.spec.registered_model.registered_name
    @dg.asset(
        key=p.key(p.spec.scoring.asset), partitions_def=p.partitions_def,
        deps=[p.key(p.spec.features.asset), p.key("model")], kinds={"pytorch", "parquet"}, group_name=p.group,
        code_version="2", pool="gpu", automation_condition=upstream_automation(p),
        op_tags={"dagster-k8s/config": p.gpu_k8s_config},  # one GPU pod per partition step in production
        retry_policy=TRANSIENT_RETRIES, metadata=column_schema(p.predictions_schema),
        backfill_policy=p.backfill_policy, output_required=False,
        description=f"{p.spec.description or p.name}: every record of the day scored by the version the MLflow "
        f"alias `{alias}` of `{model_name}` names at run time, with provenance. Checkpointed: a "
        "rerun after a crash resumes from the last committed chunk.",
    )
    def _predictions(context: dg.AssetExecutionContext, config: ScoringConfig, lake: LakeResource,
                     model_registry: ModelRegistryResource, observability: ObservabilityResource):
        scope = scope_of(context)
        with span("score", pipeline=p.name, asset=p.spec.scoring.asset, partitions=len(scope.days),
                  run_id=context.run.run_id):
            session = open_session(p, config, model_registry, observability)  # one model load for the range
            yield from materialize(context, scope, context.asset_key, lambda date: score_day(
                p, date, session, context, lake, model_registry, observability, reuse_committed=scope.reuse_committed))

    return _predictions


def build_serving_asset(p: Pipeline, blocking_checks: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        key=p.key(p.spec.serving.asset), partitions_def=p.partitions_def, deps=[p.key(p.spec.scoring.asset)],
        kinds={"parquet", "duckdb"}, group_name=p.group, code_version="2", backfill_policy=p.backfill_policy,
        retry_policy=TRANSIENT_RETRIES, output_required=False, automation_condition=upstream_automation(p),
        description=f"The day's `{p.spec.scoring.asset}` published for consumers (view "
        f"`{p.name}.{p.spec.serving.asset}`), only when the latest materialization of `{p.spec.scoring.asset}` "
        "has every blocking check evaluated and passed, also when published in a later run.",
    )
    def _serving(context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource,
                 observability: ObservabilityResource):
        scope = scope_of(context)
        history = partition_history(context.instance, scope.days, lambda run: _ours(p, run))  # for M13
        # Each day passes the gate on its own: a refused day fails alone, the others are published.
        try:
            yield from materialize(context, scope, context.asset_key, lambda date: _publish(
                context, lake, observability, date, history.get(date, [])))
        finally:  # once per step, not per day: the views read every day's files through a glob
            if p.lake(lake).is_local and warehouse.views_path:
                views = serving.write_views_sql(warehouse.views_path, lake.lake_uri)
                context.log.info(f"{len(views)} serving view(s) in {warehouse.views_path}")

    def _publish(context, lake: LakeResource, observability: ObservabilityResource, date: str,
                 history: list[tuple[float, bool]]) -> dict:
        for asset_key, names in upstream_check_names(p).items():  # the input's and features' gates too
            require_published_checks(context.instance, asset_key, names, date)
        gate = require_published_checks(context.instance, p.key(p.spec.scoring.asset), blocking_checks, date)
        started = time.perf_counter()
        with span("publish", pipeline=p.name, partition=date, asset=p.spec.serving.asset):
            store = p.lake(lake)
            uri = store.copy(p.spec.scoring.asset, date, p.spec.serving.asset)  # streamed, byte for byte
            rows = store.num_rows(p.spec.serving.asset, date)
        published = dt.datetime.now(dt.UTC)
        metadata = {
            "rows": rows, "view": f"{p.name}.{p.spec.serving.asset}", "path": dg.MetadataValue.path(uri),
            "published_at": published.isoformat(),
            "checks_verified": ", ".join(gate.checks), "predictions_run_id": gate.run_id,
            "duration_seconds": round(time.perf_counter() - started, 3),
            "published_partition_timestamp_seconds": partition_start_timestamp(date),
        }
        newest = _newest_event_time(context, p, date)
        if newest is not None:
            metadata["publish_freshness_lag_seconds"] = round(freshness_lag_seconds(newest, published), 3)
        recovery = recovery_time_seconds([*history, (published.timestamp(), True)])
        if recovery is not None:
            metadata["recovery_time_seconds"] = recovery
        if observability.pushgateway_url:
            try:
                push_metrics(observability.pushgateway_url, p.spec.serving.asset, metadata, pipeline=p.name,
                             run_ended=False)
            except OSError as exc:
                context.log.warning(f"could not push metrics: {exc}")
        return metadata

    return _serving


def _ours(p: Pipeline, run: dg.DagsterRun) -> bool:
    """A run of this pipeline: one of its jobs, or assets of its group (backfill runs)."""
    return run.job_name.startswith(f"{p.name}_") or any(k.path[0] == p.name for k in run.asset_selection or ())


def _newest_event_time(context, p: Pipeline, date: str) -> dt.datetime | None:
    """The newest input event of the day, as the scoring run recorded it."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=p.key(p.spec.scoring.asset), asset_partitions=[date]), limit=1).records
    meta = records[0].asset_materialization.metadata if records else {}
    return dt.datetime.fromisoformat(meta["newest_event_time"].value) if "newest_event_time" in meta else None


LAKE_FOLDERS = (QUARANTINE, LEDGER)
