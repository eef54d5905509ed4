"""A dependency that is down or hung: the registry fails the step fast and once, metrics never stall a run.

Real parts only: a real MLflow client and Dagster runs against a loopback port where nothing listens,
and against tiny servers started here (one that accepts connections and never answers, one that
answers every request with a fixed HTTP status). Attempts are counted by the servers; no test
asserts a duration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from batch_inference import observability
from batch_inference.modeling.registry import RUNBOOK, HttpBudget, ModelRegistry, RegistryUnavailableError
from batch_inference.observability import (
    PushSender,
    PushSettings,
    configure_pushes,
    push_check_metrics,
    push_metrics,
    push_progress,
    push_sender,
)
from batch_inference.resources import ModelRegistryResource, ObservabilityResource
from batch_inference_tests.conftest import DAYS, key, project_defs
from batch_inference_tests.dagster_dev import free_port


class SilentServer:
    """A TCP server that accepts every connection and never sends a byte; counts what it accepted."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self._accepted = threading.Condition()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._accepted:
                self.connections.append(conn)
                self._accepted.notify_all()

    @property
    def accepted(self) -> int:
        return len(self.connections)

    def wait_for(self, count: int) -> int:
        """The number of accepted connections once it reached `count` (or gave up waiting: a hang guard)."""
        with self._accepted:
            self._accepted.wait_for(lambda: len(self.connections) >= count, timeout=30)
        return self.accepted

    def close(self) -> None:
        """Stop listening first (later attempts are refused), then drop the held connections."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        self.sock.close()
        self._thread.join(timeout=5)
        for conn in self.connections:
            conn.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


class StatusServer(ThreadingHTTPServer):
    """Answers every request with one status and MLflow-style JSON error body; counts requests."""

    daemon_threads = True

    def __init__(self, status: int, error_code: str) -> None:
        self.status, self.error_code, self.requests = status, error_code, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.requests += 1
                body = json.dumps({"error_code": outer.error_code, "message": "from the test server"}).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def status_server(request) -> Iterator[StatusServer]:
    server = StatusServer(*request.param)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _dead_uri() -> str:
    return f"http://127.0.0.1:{free_port()}"  # bound and released: nothing listens there


def _materialize_predictions(settings, instance, registry: ModelRegistryResource | None = None):
    """The project's predictions asset, one partition, in process (the step's retry policy applies)."""
    defs = project_defs(settings)
    resources = dict(defs.resources)
    if registry is not None:
        resources["model_registry"] = registry
    return dg.materialize([defs.get_assets_def(key("predictions"))], partition_key=DAYS[0], resources=resources,
                          instance=instance, raise_on_error=False)


def _failure_text(result) -> str:
    return "\n".join(e.step_failure_data.error.to_string() for e in result.all_events if e.is_step_failure)


def _assert_failed_once(result, uri: str) -> None:
    assert not result.success
    events = [e.event_type_value for e in result.all_events]
    assert events.count("STEP_FAILURE") == 1
    assert "STEP_UP_FOR_RETRY" not in events  # permanent: Dagster's step retries are not spent on it
    text = _failure_text(result)
    assert "RegistryUnavailableError" in text and f"MLflow registry at {uri} is unreachable" in text
    assert RUNBOOK in text


# --- the registry ------------------------------------------------------------------------------------


def test_registry_that_is_down_fails_the_step_once_naming_uri_and_runbook(home, dagster_instance):
    uri = _dead_uri()
    result = _materialize_predictions(dataclasses.replace(home, mlflow_tracking_uri=uri), dagster_instance)
    _assert_failed_once(result, uri)
    assert "Connection refused" in _failure_text(result)


def test_registry_that_never_answers_is_given_up_after_the_budget(home, dagster_instance, silent_server):
    budget = ModelRegistryResource(tracking_uri=silent_server.url, http_timeout_s=1, http_max_retries=2,
                                   http_backoff_factor=0)
    result = _materialize_predictions(dataclasses.replace(home, mlflow_tracking_uri=silent_server.url),
                                      dagster_instance, budget)
    _assert_failed_once(result, silent_server.url)
    # 1 attempt + 2 fast retries, once: not 4 step attempts of 8 MLflow attempts each (issue 20, item 3).
    assert silent_server.accepted == 3


@pytest.mark.parametrize("status_server", [(503, "TEMPORARILY_UNAVAILABLE")], indirect=True)
def test_a_registry_answering_5xx_is_retried_within_the_budget_then_unavailable(status_server):
    registry = ModelRegistry(status_server.url, "some_model", http=HttpBudget(timeout_s=2, max_retries=3,
                                                                                backoff_factor=0))
    with pytest.raises(RegistryUnavailableError, match="after 4 attempt") as raised:
        registry.champion()
    assert status_server.requests == 4
    assert status_server.url in str(raised.value) and RUNBOOK in str(raised.value)


@pytest.mark.parametrize("status_server", [(404, "RESOURCE_DOES_NOT_EXIST")], indirect=True)
def test_a_registry_answer_is_not_mistaken_for_an_outage(status_server):
    """A 4xx is an answer: no alias yet is None (not an outage), asked once, not retried."""
    registry = ModelRegistry(status_server.url, "some_model", http=HttpBudget(timeout_s=2, backoff_factor=0))
    assert registry.champion() is None
    assert status_server.requests == 1


def test_the_budget_reaches_mlflow_when_the_client_is_built_not_at_import(tmp_path, monkeypatch):
    names = [*HttpBudget().mlflow_env()]
    for name in names:
        monkeypatch.delenv(name, raising=False)
    probe = ("import os, batch_inference.modeling.registry, batch_inference.definitions; "
             f"print([n for n in {names!r} if n in os.environ])")
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]", imported.stdout

    resource = ModelRegistryResource(tracking_uri=_dead_uri(), http_timeout_s=7, http_max_retries=1,
                                     http_backoff_factor=0, http_backoff_jitter=0.25)
    assert resource.registry("some_model").client is not None
    from mlflow.environment_variables import (
        MLFLOW_ALLOW_PICKLE_DESERIALIZATION,
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
        MLFLOW_HTTP_REQUEST_BACKOFF_JITTER,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    assert (MLFLOW_HTTP_REQUEST_TIMEOUT.get(), MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(),
            MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get(), MLFLOW_HTTP_REQUEST_BACKOFF_JITTER.get()) == (7, 1, 0, 0.25)
    assert MLFLOW_ALLOW_PICKLE_DESERIALIZATION.get() is False
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"


def test_budget_bounds():
    assert HttpBudget().attempts == 3 and HttpBudget().worst_case_s < 60
    for bad in ({"timeout_s": 0}, {"max_retries": 11}, {"backoff_factor": -1}, {"backoff_jitter": -0.1}):
        with pytest.raises(ValueError, match="registry HTTP"):
            HttpBudget(**bad)


def test_the_uri_in_the_error_carries_no_credentials(silent_server):
    port = silent_server.url.rsplit(":", 1)[1]
    registry = ModelRegistry(f"http://user:s3cr3t@127.0.0.1:{port}", "some_model",
                             http=HttpBudget(timeout_s=1, max_retries=0))
    with pytest.raises(RegistryUnavailableError) as raised:
        registry.champion()
    assert "s3cr3t" not in str(raised.value) and f"127.0.0.1:{port}" in str(raised.value)


# --- the Pushgateway ---------------------------------------------------------------------------------


@pytest.fixture
def sender(monkeypatch) -> None:
    """A fresh sender for the test; the process's own comes back afterwards."""
    monkeypatch.setattr(observability, "_SENDER", PushSender())


def test_pushes_to_a_hung_gateway_return_without_waiting_for_it(silent_server, sender):
    queue_size = 4
    configure_pushes(PushSettings(timeout_s=600, wait_s=0.2, flush_s=5, queue_size=queue_size))
    calls = 0
    for _ in range(4):  # what one scoring run pushes, and more
        push_metrics(silent_server.url, "predictions", {"rows": 10}, pipeline="p")
        push_progress(silent_server.url, "predictions", 10, 10, running=False, pipeline="p")
        push_check_metrics(silent_server.url, "predictions", {"checks_failed": 0}, pipeline="p")
        calls += 3
    current = push_sender()
    # Every call returned while the gateway held the first push open (a 600 s socket timeout): the
    # one thread is stuck on it, `queue_size` pushes wait, the rest were dropped.
    assert calls == 12 and silent_server.wait_for(1) == 1
    assert current.pending == 1 + queue_size and current.dropped == calls - 1 - queue_size
    assert current.congested and current.flush() is False  # congested: the flush does not wait either
    silent_server.close()  # the gateway goes away: the stuck push fails, the queued ones are refused
    assert current.flush(timeout_s=60) is True
    assert current.failed == 1 + queue_size and current.sent == 0


def test_a_refused_push_still_raises_oserror_to_the_caller(sender):
    configure_pushes(PushSettings(timeout_s=5, wait_s=5))
    with pytest.raises(OSError):
        push_metrics(_dead_uri(), "predictions", {"rows": 1})
    assert push_sender().failed == 1 and not push_sender().congested


def test_a_run_with_a_hung_gateway_succeeds_and_its_teardown_does_not_wait(silent_server, sender):
    """The resource applies the push settings at set-up and flushes (bounded) at teardown."""
    pushes = []

    @dg.asset
    def pushing(observability: ObservabilityResource) -> None:
        for rows in range(5):
            push_metrics(observability.pushgateway_url, "pushing", {"rows": rows}, pipeline="p")
            pushes.append(rows)

    resource = ObservabilityResource(pushgateway_url=silent_server.url, push_timeout_s=600, push_queue_size=2)
    result = dg.materialize([pushing], resources={"observability": resource})
    assert result.success and pushes == [0, 1, 2, 3, 4]
    sent = push_sender()
    assert sent.settings == resource.push_settings
    assert silent_server.wait_for(1) == 1 and sent.pending == 3 and sent.dropped == 2


def test_push_settings_bounds():
    with pytest.raises(ValueError, match="invalid push settings"):
        PushSettings(queue_size=0)
    assert isinstance(PushSender(PushSettings(queue_size=1)).settings, PushSettings)
