"""The alert path against a real local webhook receiver: routing, grouping across ticks, suppression."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from batch_inference.alerting import Alert, AlertRouter, runbook_url

T0 = 1_795_000_000.0  # 2026-11-18T...Z, any fixed instant


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        server.calls += 1
        if server.fail_first and server.calls == 1:
            self.send_response(500)
            self.end_headers()
            return
        server.bodies.append((self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.bodies, server.calls, server.fail_first = [], 0, False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _router(server: ThreadingHTTPServer, **extra) -> AlertRouter:
    base = f"http://127.0.0.1:{server.server_address[1]}"
    return AlertRouter.from_config({
        "group_window_seconds": 900,
        "routes": [
            {"kinds": ["run_failure", "check_failure"], "pipelines": ["card_fraud"], "severity": "page",
             "webhook": f"{base}/page"},
            {"severity": "ticket", "webhook": f"{base}/ticket"},
        ],
        **extra,
    })


def _tick(router: AlertRouter, alerts: list[Alert], cursor: str | None, now: float) -> str:
    """One sensor tick: state comes from and goes back to a JSON cursor; notifications are sent."""
    notes, state = router.process(alerts, json.loads(cursor) if cursor else {}, now=now)
    for note in notes:
        router.send(note)
    return json.dumps(state)


def _failure(partition: str, kind: str = "run_failure", backfill: bool = False, pipeline: str = "card_fraud") -> Alert:
    return Alert(kind=kind, pipeline=pipeline, title=f"{pipeline}/predictions failed", partition=partition,
                 run_id=f"run-{partition}", runbook=runbook_url("F1"), backfill=backfill)


def test_failed_run_and_failed_check_each_reach_the_receiver_once(receiver):
    router = _router(receiver)
    cursor = _tick(router, [_failure("2026-11-20")], None, T0)
    check = Alert(kind="check_failure", pipeline="card_fraud", title="predictions_drift failed (ERROR)",
                  partition="2026-11-20", run_id="run-x", runbook=runbook_url("F5"))
    cursor = _tick(router, [check], cursor, T0 + 30)
    for minute in range(1, 40):  # later ticks with nothing new send nothing more, before or after the window
        cursor = _tick(router, [], cursor, T0 + 60 * minute)
    assert [(path, body["kind"], body["partitions"]) for path, body in receiver.bodies] == [
        ("/page", "run_failure", ["2026-11-20"]), ("/page", "check_failure", ["2026-11-20"])]
    first = receiver.bodies[0][1]
    assert first["severity"] == "page" and first["runbook"].endswith("docs/runbooks/F1.md") and not first["grouped"]
    assert json.loads(cursor) == {"groups": {}}


def test_other_pipelines_are_routed_to_tickets(receiver):
    router = _router(receiver)
    _tick(router, [_failure("2026-11-20", pipeline="churn")], None, T0)
    assert [(path, body["severity"]) for path, body in receiver.bodies] == [("/ticket", "ticket")]


def test_365_backfill_failures_send_one_grouped_message(receiver):
    router = _router(receiver)  # suppress_backfills defaults to on
    days = [f"2025-{m:02d}-{d:02d}" for m in range(1, 13) for d in range(1, 32)][:365]
    cursor = None
    for i in range(0, 365, 10):  # failures trickle in over many sensor ticks inside one window
        cursor = _tick(router, [_failure(day, backfill=True) for day in days[i:i + 10]], cursor, T0 + i)
    assert receiver.bodies == []
    cursor = _tick(router, [], cursor, T0 + 901)  # the window closes: one summary
    cursor = _tick(router, [], cursor, T0 + 2000)
    assert len(receiver.bodies) == 1
    body = receiver.bodies[0][1]
    assert body["grouped"] and body["count"] == 365 and body["partitions_count"] == 365
    assert body["backfill"] and "365" in body["text"]


def test_365_failures_in_one_tick_are_one_message(receiver):
    router = _router(receiver, suppress_backfills=False)
    _tick(router, [_failure(f"2025-01-01-{i}") for i in range(365)], None, T0)
    assert len(receiver.bodies) == 1 and receiver.bodies[0][1]["count"] == 365


def test_later_failures_in_the_window_become_one_follow_up(receiver):
    router = _router(receiver)
    cursor = _tick(router, [_failure("2026-11-20")], None, T0)
    for i in range(1, 50):
        cursor = _tick(router, [_failure(f"2026-10-{i:02d}")], cursor, T0 + i)
    cursor = _tick(router, [], cursor, T0 + 1000)
    assert [b["count"] for _, b in receiver.bodies] == [1, 49] and receiver.bodies[1][1]["grouped"]


def test_maintenance_window_sends_nothing(receiver):
    router = _router(receiver, maintenance_windows=[{"start": "2026-11-20T22:00:00Z", "end": "2026-11-21T02:00:00Z"}])
    inside = router.maintenance_windows[0][0] + 60
    cursor = _tick(router, [_failure("2026-11-20"), _failure("2026-11-19", kind="check_failure")], None, inside)
    cursor = _tick(router, [], cursor, inside + 3600)
    assert receiver.bodies == [] and json.loads(cursor) == {"groups": {}}
    _tick(router, [_failure("2026-11-21")], cursor, inside + 5 * 3600)  # after the window: delivered
    assert len(receiver.bodies) == 1


def test_send_retries_once(receiver):
    receiver.fail_first = True
    router = _router(receiver)
    _tick(router, [_failure("2026-11-20")], None, T0)
    assert receiver.calls == 2 and len(receiver.bodies) == 1


def test_send_raises_when_the_receiver_is_down(receiver):
    router = _router(receiver)
    notes, _ = router.process([_failure("2026-11-20")], {}, now=T0)
    receiver.shutdown()
    receiver.server_close()
    with pytest.raises(OSError):
        router.send(notes[0])


def test_from_yaml_and_bad_severity():
    router = AlertRouter.from_yaml("group_window_seconds: 60\nsuppress_backfills: false\nroutes:\n"
                                   "  - {severity: ticket, webhook: 'http://127.0.0.1:9/x'}\n")
    assert router.group_window_seconds == 60 and not router.suppress_backfills
    with pytest.raises(ValueError):
        AlertRouter.from_config({"routes": [{"severity": "sms", "webhook": "http://x"}]})
