"""Assertions shared by the pipeline tests: every landing row is accounted for exactly once."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from batch_inference.lake import Lake
from batch_inference.settings import Settings


def quarantined_ids(lake: Lake, day: str) -> list:
    ids: list = []
    for stage in ("transactions", "predictions"):
        part = f"part-{stage}.parquet"
        if lake.exists("quarantine", day, part):
            ids += lake.read("quarantine", day, part=part).column("record_id").to_pylist()
    return ids


def assert_day_scored_once(settings: Settings, day: str, champion_version: str) -> None:
    """Landing ids = scored ids + quarantined; no duplicates; scores in [0, 1]; champion's version."""
    lake = Lake(f"{settings.lake_uri}/card_fraud")
    landing = pq.read_table(f"{settings.landing_uri}/transactions_{day}.parquet")
    preds = lake.read("predictions", day)
    scored = preds.column("record_id").to_pylist()
    quarantined = quarantined_ids(lake, day)
    assert len(scored) == len(set(scored)), "duplicate record_id in predictions"
    assert len(scored) + len(quarantined) == landing.num_rows
    landing_ids = {r for r in landing.column("record_id").to_pylist() if r is not None}
    assert set(scored) <= landing_ids, "predictions invented a record_id"
    assert landing_ids == set(scored) | {q for q in quarantined if q is not None}
    score = preds.column("score").to_numpy()
    assert ((score >= 0) & (score <= 1)).all() and np.isfinite(score).all()
    assert set(preds.column("model_version").to_pylist()) == {champion_version}
