"""The demo on production parts: lake on S3 (moto over HTTP), Dagster on Postgres, MLflow server."""

import os
import subprocess
import sys

import psycopg2
import pyarrow.fs as pafs
import pytest

from batch_inference.lake import Lake
from batch_inference_tests.conftest import MODEL_NAME, PIPELINE, subprocess_env
from batch_inference_tests.services import mlflow_server, moto_s3, postgres, postgres_dagster_yaml

pytestmark = pytest.mark.integration


def test_demo_on_s3_postgres_and_mlflow_server(home, tmp_path):
    with moto_s3(tmp_path, "bi-bucket") as aws, postgres(tmp_path) as pg, mlflow_server(tmp_path) as mlflow_uri:
        (home.dagster_home / "dagster.yaml").write_text(postgres_dagster_yaml(pg))
        env = {**subprocess_env(home), **aws, "BATCH_INFERENCE_LAKE_URI": "s3://bi-bucket/lake",
               "MLFLOW_TRACKING_URI": mlflow_uri, "DAGSTER_PG_PASSWORD": pg["password"],
               "DEMO_DAYS": "2", "DEMO_ROWS_PER_DAY": "3000", "DEMO_PIPELINES": PIPELINE}
        proc = subprocess.run([sys.executable, "-m", "batch_inference.demo"], env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        summary = [line.strip() for line in proc.stdout.splitlines()]  # the per-day table of the pipeline
        days = [line.split()[0] for line in summary if line[:2] == "20" and f"{MODEL_NAME} v1" in line]
        assert len(days) == 2

        os.environ.update(aws)  # so this process's pyarrow talks to moto too
        lake = Lake(f"s3://bi-bucket/lake/{PIPELINE}")
        assert isinstance(lake.fs, pafs.S3FileSystem)
        assert lake.dates("predictions") == sorted(days)
        assert lake.dates("serving_predictions") == sorted(days)  # published on S3 too
        for day in days:
            assert lake.read("predictions", day).num_rows == 3000
            assert lake.read("serving_predictions", day).num_rows == 3000
        assert not (home.home / "lake").exists()  # nothing of the lake on local disk

        with psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"], password=pg["password"],
                              dbname=pg["db"]) as con, con.cursor() as cur:
            cur.execute("SELECT status, count(*) FROM runs GROUP BY status")
            statuses = dict(cur.fetchall())
        assert statuses == {"SUCCESS": 2 + 2 + 1 + 2}  # ingest x2, labels x2, train, score x2
        assert not (home.dagster_home / "history").exists()  # no sqlite run storage was used
        from mlflow import MlflowClient

        champion = MlflowClient(tracking_uri=mlflow_uri).get_model_version_by_alias(MODEL_NAME, "champion")
        assert champion.version == "1"  # registered on, and served by, the tracking server
        assert not (home.home / "mlflow").exists()
