"""Jobs over the asset graph: ingest a day, train, score a day."""

import dagster as dg

ingest_job = dg.define_asset_job(
    "ingest_day", selection=["transactions", "features"],
    description="Land, validate and featurise one day.",
)
score_job = dg.define_asset_job(
    "score_day", selection=["predictions", "serving_predictions"],
    description="Score one day with the champion model and publish it.",
)
daily_pipeline_job = dg.define_asset_job(
    "daily_pipeline", selection=["transactions", "features", "predictions", "serving_predictions"],
    description="Everything for one day: land, featurise, score, publish.",
)
train_job = dg.define_asset_job("train_model", selection=["model"], description="Train, register, maybe promote.")

ALL_JOBS = [ingest_job, score_job, daily_pipeline_job, train_job]
