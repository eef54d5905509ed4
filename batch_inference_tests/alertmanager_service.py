"""A real Alertmanager (Debian's `prometheus-alertmanager`) on loopback, and the webhook receiver it
notifies: a real HTTP server that records every notification."""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from batch_inference_tests.dagster_dev import free_port
from batch_inference_tests.services import _process

# Fast grouping for tests; resolved alerts are not re-sent, repeats only after an hour, so every
# notification the receiver gets is a first notification.
CONFIG = """\
route:
  receiver: hook
  group_by: [alertname, pipeline]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {hook}
        send_resolved: false
"""


class Webhook:
    """What Alertmanager posted: one dict per notification (its webhook JSON)."""

    def __init__(self) -> None:
        self.notifications: list[dict] = []
        self.lock = threading.Lock()

    @property
    def alerts(self) -> list[dict]:
        """Every alert of every notification, in arrival order."""
        with self.lock:
            return [alert for note in self.notifications for alert in note["alerts"]]


@contextlib.contextmanager
def webhook_receiver() -> Iterator[tuple[str, Webhook]]:
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with hook.lock:
                hook.notifications.append(body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", hook
    finally:
        server.shutdown()
        server.server_close()


def alertmanager_binary() -> str:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip("Debian's prometheus-alertmanager is installed by .ci/run")
    return binary


@contextlib.contextmanager
def alertmanager(tmp: Path, hook_url: str, port: int | None = None) -> Iterator[str]:
    """Alertmanager on 127.0.0.1:`port` (a free one if None), clustering off, storage in `tmp`,
    routing everything to `hook_url`; yields its base URL once it is ready."""
    binary = alertmanager_binary()
    port = port or free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "alertmanager.yml"
    config.write_text(CONFIG.format(hook=hook_url))
    url = f"http://127.0.0.1:{port}"
    with _process([binary, f"--config.file={config}", f"--storage.path={tmp / 'data'}",
                   f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
                  tmp / "alertmanager.log", f"{url}/-/ready"):
        yield url
