"""Real servers started by the tests on loopback: moto (S3), Postgres, an MLflow tracking server."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from batch_inference_tests.dagster_dev import free_port

BIN = Path(sys.executable).parent


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} server exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=2)
            return
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def _process(args: list[str], log: Path, url: str, env: dict | None = None) -> Iterator[None]:
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait_http(url, proc, log)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        if proc.poll() is None:
            os.killpg(proc.pid, 9)


@contextlib.contextmanager
def moto_s3(tmp: Path, bucket: str) -> Iterator[dict[str, str]]:
    """moto's S3 over HTTP; yields the AWS environment that points at it, with `bucket` created."""
    port = free_port()
    with _process([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], tmp / "moto.log",
                  f"http://127.0.0.1:{port}/"):
        env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
        import boto3

        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket=bucket)
        yield env


@contextlib.contextmanager
def postgres(tmp: Path, user: str = "postgres") -> Iterator[dict[str, str | int]]:
    """A Postgres 15 cluster (initdb/pg_ctl as a non-root user) on 127.0.0.1, database `dagster`."""
    base = Path(tempfile.mkdtemp(prefix="bi-pg-"))  # pytest's tmp dirs are private to root
    os.chmod(base, 0o755)
    data, pwfile = base / "data", base / "pwfile"
    pwfile.write_text("dagster-test\n")
    shutil.chown(base, user=user)
    shutil.chown(pwfile, user=user)
    port = free_port()
    run = ["runuser", "-u", user, "--"]
    subprocess.run([*run, "initdb", "-D", str(data), "-A", "md5", "-U", "dagster", f"--pwfile={pwfile}"],
                   check=True, capture_output=True)
    log = data / "server.log"
    subprocess.run([*run, "pg_ctl", "-D", str(data), "-l", str(log), "-w", "-o",
                    f"-p {port} -h 127.0.0.1 -k {data}", "start"], check=True, capture_output=True)
    try:
        import psycopg2

        with contextlib.closing(psycopg2.connect(host="127.0.0.1", port=port, user="dagster",
                                                 password="dagster-test", dbname="postgres")) as con:
            con.autocommit = True
            con.cursor().execute("CREATE DATABASE dagster")
        yield {"host": "127.0.0.1", "port": port, "user": "dagster", "password": "dagster-test", "db": "dagster"}
    finally:
        subprocess.run([*run, "pg_ctl", "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def postgres_dagster_yaml(pg: dict) -> str:
    """An instance config whose storage is Postgres; the password comes from the environment."""
    return f"""
storage:
  postgres:
    postgres_db:
      username: {pg['user']}
      password:
        env: DAGSTER_PG_PASSWORD
      hostname: {pg['host']}
      db_name: {pg['db']}
      port: {pg['port']}
      scheme: postgresql+psycopg2
telemetry:
  enabled: false
"""


@contextlib.contextmanager
def mlflow_server(tmp: Path) -> Iterator[str]:
    """`mlflow server` with a sqlite backend and proxied artifacts; yields its tracking URI."""
    port = free_port()
    args = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{tmp / 'mlflow-server.db'}",
            "--artifacts-destination", str(tmp / "mlflow-server-artifacts")]
    with _process(args, tmp / "mlflow.log", f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"
