"""The alert path's delivery, no Dagster import: failures become Alertmanager alerts, kept in a queue
until Alertmanager accepts them.

Alertmanager (`deploy/alertmanager/alertmanager.yml`) is the receiving end: grouping (a failing
365-day backfill is one notification, not 365), silences and maintenance, inhibition and routing to
PagerDuty, Slack or a webhook are its job. This module only turns a failure into an alert and posts
it to Alertmanager's v2 API (`POST /api/v2/alerts`).

Delivery is at least once and idempotent: an alert is removed from the `AlertQueue` only when
Alertmanager answers 2xx; otherwise it stays and is posted again on the next sensor tick. Posting
the same alert twice is harmless, because Alertmanager identifies an alert by its labels (which
include the run id) and notifies a receiver once per group.

Alerts carry no `endsAt`: Alertmanager resolves them `resolve_timeout` (5 minutes by default) after
it last received them, so an alert delivered hours late, after an outage, still fires.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from batch_inference.failures import RUNBOOKS

REPOSITORY_URL = "https://github.com/your-org/batch_inference/blob/main/"  # your-org: placeholder
RUN_FAILED, CHECK_FAILED = "BatchInferenceRunFailed", "BatchInferenceBlockingCheckFailed"
SEVERITIES = ("page", "ticket")
RUNBOOK_IN_TEXT = re.compile(r"runbooks/(F\d+|SLO)\.md")


def runbook_url(failure_mode: str) -> str:
    """The runbook of a failure mode (`F1`..`F7`, `SLO`), from the one runbook table."""
    return f"{REPOSITORY_URL}{RUNBOOKS[failure_mode]}"


def runbook_named_in(text: str) -> str | None:
    """The failure mode of the first runbook a message names (`... Runbook: docs/runbooks/F2.md`)."""
    modes = (match.group(1) for match in RUNBOOK_IN_TEXT.finditer(text or ""))
    return next((mode for mode in modes if mode in RUNBOOKS), None)


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Alert:
    """One failure: a failed run, or one failed blocking check of one partition."""

    alertname: str  # RUN_FAILED or CHECK_FAILED
    pipeline: str
    asset: str
    runbook: str  # failure mode: F1..F7, SLO
    summary: str
    run_id: str
    occurred_at: float  # epoch seconds of the failure
    partitions: tuple[str, ...] = ()  # every day the failure covers (a ranged run: all of them)
    severity: str = "page"
    check: str = ""
    backfill: str = ""  # the backfill id, when the run belongs to one
    description: str = ""
    extra_labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert severity must be one of {SEVERITIES}, not {self.severity!r}")
        if self.runbook not in RUNBOOKS:
            raise ValueError(f"alert runbook must be one of {sorted(RUNBOOKS)}, not {self.runbook!r}")

    def partition_label(self) -> str:
        """One day, or `first..last` for several (the annotation `partitions` lists them all)."""
        days = sorted(self.partitions)
        return days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}" if days else ""

    def labels(self) -> dict[str, str]:
        """What identifies the alert in Alertmanager (grouping, routing, silences match on these)."""
        labels = {"alertname": self.alertname, "pipeline": self.pipeline, "asset": self.asset,
                  "partition": self.partition_label(), "severity": self.severity, "runbook": self.runbook,
                  "check": self.check, "backfill": self.backfill, "run_id": self.run_id, **self.extra_labels}
        return {name: value for name, value in labels.items() if value}  # Alertmanager drops empty labels

    def annotations(self) -> dict[str, str]:
        days = sorted(self.partitions)
        return {"summary": self.summary,
                "description": self.description or self.summary,
                "runbook_url": runbook_url(self.runbook),
                "partitions": ",".join(days),
                "partitions_count": str(len(days))}

    def to_alertmanager(self) -> dict[str, Any]:
        """The alert as one element of the v2 API's `postableAlerts` (no endsAt, see the module doc)."""
        return {"labels": self.labels(), "annotations": self.annotations(), "startsAt": _iso(self.occurred_at)}

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "partitions": list(self.partitions), "extra_labels": dict(self.extra_labels)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alert:
        return cls(**{**data, "partitions": tuple(data.get("partitions") or ()),
                      "extra_labels": dict(data.get("extra_labels") or {})})


@dataclass(frozen=True)
class Delivery:
    """The outcome of one post: `status` is the HTTP status, 0 when no answer came."""

    status: int
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


def post_alerts(alertmanager_url: str, alerts: Iterable[Alert], timeout_s: float = 5.0) -> Delivery:
    """POST the alerts to `<alertmanager_url>/api/v2/alerts` in one request; never raises."""
    body = json.dumps([alert.to_alertmanager() for alert in alerts]).encode()
    request = urllib.request.Request(f"{alertmanager_url.rstrip('/')}/api/v2/alerts", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - configured URL
            return Delivery(response.status)
    except urllib.error.HTTPError as exc:
        return Delivery(exc.code, exc.read().decode(errors="replace")[:500])
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return Delivery(0, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}")


@dataclass
class AlertQueue:
    """Alerts not yet accepted by Alertmanager, plus where the failure scan stopped (`after`).

    JSON-serialisable (`to_cursor` / `from_cursor`): the alert sensor keeps it in its own cursor,
    so the queue is stored by the Dagster instance (Postgres in production) and survives daemon
    and code-server restarts.
    """

    after: str | None = None  # the event-log cursor of the last failure already turned into alerts
    pending: list[Alert] = field(default_factory=list)

    MAX_PENDING = 500  # beyond this, the oldest are dropped (and reported): the cursor stays small

    @classmethod
    def from_cursor(cls, cursor: str | None) -> AlertQueue:
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(after=data.get("after"), pending=[Alert.from_json(a) for a in data.get("pending", [])])

    def to_cursor(self) -> str:
        return json.dumps({"after": self.after, "pending": [alert.to_json() for alert in self.pending]},
                          sort_keys=True)

    def add(self, alerts: Iterable[Alert]) -> list[Alert]:
        """Queue alerts; returns the oldest ones dropped to stay under MAX_PENDING (normally none)."""
        self.pending.extend(alerts)
        overflow = max(len(self.pending) - self.MAX_PENDING, 0)
        dropped, self.pending = self.pending[:overflow], self.pending[overflow:]
        return dropped

    def flush(self, alertmanager_url: str, timeout_s: float = 5.0) -> tuple[list[Alert], Delivery | None]:
        """Post every pending alert; on a 2xx answer they are sent and leave the queue, otherwise they
        all stay for the next call. Returns (alerts sent now, the delivery; None if nothing was pending)."""
        if not self.pending:
            return [], None
        delivery = post_alerts(alertmanager_url, self.pending, timeout_s)
        if not delivery.accepted:
            return [], delivery
        sent, self.pending = self.pending, []
        return sent, delivery
