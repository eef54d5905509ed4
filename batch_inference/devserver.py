"""A real `dagster dev` (webserver + daemon) started in its own process group, and GraphQL to it.

Used by `make bench-backfill` and by the integration tests: a backfill launched exactly as the UI
does it (`launchPartitionBackfill`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


@dataclass(frozen=True)
class DevServer:
    port: int
    pid: int  # of `dagster dev`; the webserver, daemon and code server are its children


@contextlib.contextmanager
def dagster_dev(env: dict[str, str], dagster_home: Path, log: Path, timeout: float = 180) -> Iterator[DevServer]:
    """`dagster dev -w workspace.yaml` on a free port with the project's dagster.yaml; yields once the UI
    answers, and stops the whole process group (SIGINT, then SIGKILL) on exit."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO, env={**env, "DAGSTER_HOME": str(dagster_home)}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGINT reaches webserver, daemon and runs
        )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited: {log.read_text()[-3000:]}")
            with contextlib.suppress(OSError, ValueError):
                if graphql(port, "{ version }").get("data"):
                    break
            time.sleep(1)
        else:
            raise TimeoutError(f"dagster dev did not answer: {log.read_text()[-3000:]}")
        yield DevServer(port, proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
