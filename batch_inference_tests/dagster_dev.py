"""A real `dagster dev` (webserver + daemon) for a test, talked to over GraphQL (batch_inference.devserver)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from batch_inference.devserver import dagster_dev as _dagster_dev
from batch_inference.devserver import free_port, graphql

__all__ = ["dagster_dev", "free_port", "graphql", "wait_for"]


@contextlib.contextmanager
def dagster_dev(env: dict[str, str], dagster_home: Path, log: Path) -> Iterator[int]:
    """`dagster dev -w workspace.yaml` on a free port; yields the port once the UI answers."""
    with _dagster_dev(env, dagster_home, log, timeout=120) as server:
        yield server.port


def wait_for(predicate, timeout: float, what: str, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
