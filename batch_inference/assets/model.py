"""`model`: train on a window of labelled features, register in MLflow, promote if better."""

import time

import dagster as dg
import pyarrow as pa

from batch_inference.features import FEATURE_COLUMNS
from batch_inference.modeling.registry import CHAMPION
from batch_inference.resources import LakeResource, ModelRegistryResource
from batch_inference.validation import validate_partition_key


class ModelTrainingConfig(dg.Config):
    """Which days to train on and how."""

    training_days: int = 7
    end_date: str | None = None  # last day of the window; default: the latest features partition
    epochs: int = 4
    hidden_sizes: list[int] = [256, 256]
    max_rows: int = 400_000
    promote: str = "if_better"  # if_better | always | never


@dg.asset(
    deps=["features"],
    kinds={"mlflow", "pytorch"},
    group_name="model",
    code_version="1",
    description="A torch MLP trained on recent labelled features, registered in MLflow; "
    "the `champion` alias moves to it only when it beats the champion on held-out data.",
)
def model(context: dg.AssetExecutionContext, config: ModelTrainingConfig, lake: LakeResource,
          model_registry: ModelRegistryResource) -> dg.MaterializeResult:
    from batch_inference.modeling.training import TrainingParams, roc_auc, score, train

    started = time.perf_counter()
    store = lake.lake()
    dates = store.dates("features")
    if config.end_date:
        end = validate_partition_key(config.end_date)
        dates = [d for d in dates if d <= end]
    window = dates[-config.training_days:]
    if not window:
        raise dg.Failure("no `features` partitions to train on: materialize transactions and features first")
    table = pa.concat_tables(store.read("features", d) for d in window)
    params = TrainingParams(hidden_sizes=tuple(config.hidden_sizes), epochs=config.epochs, max_rows=config.max_rows)
    trained = train(table, FEATURE_COLUMNS, params)
    registry = model_registry.registry()
    ref = registry.register(trained, params={"window": f"{window[0]}..{window[-1]}", "days": len(window),
                                             "hidden_sizes": config.hidden_sizes, "epochs": config.epochs})

    champion = registry.champion()
    champion_auc = None
    if champion is not None and champion.version != ref.version and trained.holdout_x is not None:
        try:
            current = registry.load(champion)
            champion_auc = roc_auc(trained.holdout_y, score(current.model, trained.holdout_x))
        except Exception as exc:  # an unusable champion is replaced by a good candidate
            context.log.warning(f"current champion v{champion.version} could not be evaluated: {exc}")
            champion_auc = float("-inf")
    new_auc = trained.metrics["holdout_auc"]
    promote = config.promote == "always" or (
        config.promote == "if_better" and (champion_auc is None or new_auc > champion_auc)
    )
    if promote:
        registry.set_champion(ref.version)
        context.log.info(f"{CHAMPION} -> {ref.name} v{ref.version} (holdout AUC {new_auc:.4f})")
    metadata = {
        "model_name": ref.name,
        "model_version": ref.version,
        "promoted": promote,
        "champion_version": ref.version if promote else (champion.version if champion else ""),
        "holdout_auc": round(new_auc, 5),
        "training_window": f"{window[0]}..{window[-1]}",
        "training_rows": int(trained.metrics["train_rows"]),
        "weights_sha256": ref.weights_sha256 or "",
        "duration_seconds": round(time.perf_counter() - started, 3),
        "mlflow_run_id": ref.run_id,
        "model_uri": ref.uri,
    }
    if champion_auc is not None:
        metadata["champion_holdout_auc"] = round(champion_auc, 5)
    return dg.MaterializeResult(metadata=metadata)
