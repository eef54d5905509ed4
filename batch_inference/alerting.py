"""The alert path, no Dagster import: route, group, suppress and deliver alerts to webhooks.

A sensor turns failed runs and failed blocking checks into `Alert`s; `AlertRouter.process` decides what
to send, keeping its grouping state in a JSON-serialisable dict the sensor stores in its cursor, so
grouping works across sensor ticks: a 365-day backfill that fails sends one grouped notification per
(pipeline, kind) and group window, not 365.

Intended use (the Dagster wiring lives with the sensors)::

    router = AlertRouter.from_yaml(Path("deploy/alerting.yaml").read_text())

    @dg.run_failure_sensor(minimum_interval_seconds=30)
    def page_on_failure(context: dg.RunFailureSensorContext):
        run = context.dagster_run
        alert = Alert(kind="run_failure", pipeline=run.tags.get("pipeline", ""), title=run.job_name,
                      partition=run.tags.get("dagster/partition", ""), run_id=run.run_id,
                      runbook=runbook_url("SLO"), occurred_at=time.time(),
                      backfill="dagster/backfill" in run.tags)
        state = json.loads(context.cursor) if context.cursor else {}
        notifications, state = router.process([alert], state, now=time.time())
        for note in notifications:
            router.send(note)
        context.update_cursor(json.dumps(state))

Routes are matched in order; the first whose `kinds` / `pipelines` match (empty = any) gives the
severity and webhook. Example config::

    group_window_seconds: 900
    suppress_backfills: true
    maintenance_windows: [{start: "2026-11-20T22:00:00Z", end: "2026-11-21T02:00:00Z"}]
    routes:
      - {kinds: [run_failure, check_failure], pipelines: [my_pipeline], severity: page,
         webhook: "https://events.pagerduty.example/hook"}
      - {severity: ticket, webhook: "https://tickets.example/hook"}
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("page", "ticket")
RUNBOOK_BASE = "https://github.com/your-org/batch_inference/blob/main/docs/runbooks/"  # your-org: placeholder


@dataclass(frozen=True)
class Alert:
    """One failure: a failed run or a failed blocking check of one partition."""

    kind: str  # run_failure, check_failure, or a failure mode such as F4
    pipeline: str
    title: str
    partition: str = ""
    run_id: str = ""
    runbook: str = ""
    severity: str = ""  # empty: the route decides
    backfill: bool = False
    occurred_at: float | None = None  # epoch seconds of the failure (detection time = send - this)


@dataclass(frozen=True)
class Route:
    severity: str
    webhook: str
    kinds: tuple[str, ...] = ()
    pipelines: tuple[str, ...] = ()

    def matches(self, alert: Alert) -> bool:
        return (not self.kinds or alert.kind in self.kinds) and (not self.pipelines or alert.pipeline in self.pipelines)


@dataclass
class Notification:
    """What one webhook receives: a single alert or a group of them."""

    webhook: str
    severity: str
    pipeline: str
    kind: str
    title: str
    runbook: str
    partitions: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    count: int = 1
    grouped: bool = False
    backfill: bool = False
    first_failure_at: float | None = None

    def payload(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("webhook")
        body["partitions_count"] = len(self.partitions)
        body["text"] = (f"[{self.severity}] {self.pipeline}: {self.title}"
                        + (f" ({self.count} failures, {len(self.partitions)} partitions)" if self.grouped else "")
                        + (f" runbook: {self.runbook}" if self.runbook else ""))
        return body


def _parse_time(text: str) -> float:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


class AlertRouter:
    """Routes alerts to page/ticket webhooks with grouping, maintenance windows and backfill suppression."""

    MAX_LISTED = 50  # partitions / run ids listed in one notification

    def __init__(self, routes: Iterable[Route], group_window_seconds: float = 900,
                 maintenance_windows: Iterable[tuple[float, float]] = (), suppress_backfills: bool = True,
                 timeout_s: float = 5.0) -> None:
        self.routes = list(routes)
        for route in self.routes:
            if route.severity not in SEVERITIES:
                raise ValueError(f"route severity must be one of {SEVERITIES}, not {route.severity!r}")
        self.group_window_seconds = float(group_window_seconds)
        self.maintenance_windows = [(float(a), float(b)) for a, b in maintenance_windows]
        self.suppress_backfills = suppress_backfills
        self.timeout_s = timeout_s

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AlertRouter:
        """Build from a dict (see the module docstring); times are ISO 8601, UTC when no offset."""
        routes = [Route(severity=r["severity"], webhook=r["webhook"], kinds=tuple(r.get("kinds") or ()),
                        pipelines=tuple(r.get("pipelines") or ())) for r in config.get("routes", [])]
        windows = [(_parse_time(str(w["start"])), _parse_time(str(w["end"])))
                   for w in config.get("maintenance_windows") or []]
        return cls(routes, group_window_seconds=config.get("group_window_seconds", 900),
                   maintenance_windows=windows, suppress_backfills=config.get("suppress_backfills", True),
                   timeout_s=config.get("timeout_s", 5.0))

    @classmethod
    def from_yaml(cls, text: str) -> AlertRouter:
        import yaml

        return cls.from_config(yaml.safe_load(text) or {})

    def in_maintenance(self, now: float) -> bool:
        return any(start <= now < end for start, end in self.maintenance_windows)

    def route(self, alert: Alert) -> Route | None:
        return next((r for r in self.routes if r.matches(alert)), None)

    def process(self, alerts: Iterable[Alert], state: Mapping[str, Any] | None,
                now: float | None = None) -> tuple[list[Notification], dict[str, Any]]:
        """Decide what to send now; returns (notifications, new state) without sending anything.

        The first alerts of a (pipeline, kind) open a group window and go out at once, as one notification
        (grouped when several arrived in the same tick); later ones in the window are counted and go out as
        one grouped follow-up when the window closes (on the first `process` call after it). Alerts inside
        a maintenance window are dropped. Backfill alerts, with `suppress_backfills`, are never sent
        singly: one summary per (pipeline, kind) when the window closes, however many ticks they span.
        """
        now = time.time() if now is None else now
        groups: dict[str, dict[str, Any]] = json.loads(json.dumps(dict((state or {}).get("groups", {}))))
        out: list[Notification] = []
        maintenance = self.in_maintenance(now)
        batches: dict[str, list[Alert]] = {}
        for alert in alerts if not maintenance else ():
            suppressed = alert.backfill and self.suppress_backfills
            batches.setdefault(f"{alert.pipeline}\x1f{alert.kind}\x1f{int(suppressed)}", []).append(alert)
        for key, batch in batches.items():
            group = groups.get(key)
            if group is None:
                first = batch[0]
                group = groups[key] = {"opened": now, "alert": asdict(first), "partitions": [], "run_ids": [],
                                       "count": 0, "pending": 0}
                if not (first.backfill and self.suppress_backfills):
                    # Open the window: everything of this tick goes out now, as one notification.
                    for alert in batch:
                        self._remember(group, alert)
                    group["count"] = len(batch)
                    note = self._notification(first, group["partitions"], group["run_ids"], len(batch),
                                              grouped=len(batch) > 1)
                    if note:
                        out.append(note)
                    group["partitions"], group["run_ids"] = [], []
                    continue
            for alert in batch:
                self._remember(group, alert)
            group["count"] += len(batch)
            group["pending"] += len(batch)
        for key in list(groups):
            group = groups[key]
            if now - group["opened"] < self.group_window_seconds:
                continue
            del groups[key]
            if group["pending"] and not maintenance:
                note = self._notification(Alert(**group["alert"]), group["partitions"], group["run_ids"],
                                          group["pending"], grouped=True)
                if note:
                    out.append(note)
        return out, {"groups": groups}

    def _remember(self, group: dict[str, Any], alert: Alert) -> None:
        if alert.partition and alert.partition not in group["partitions"]:
            group["partitions"].append(alert.partition)
        if alert.run_id and len(group["run_ids"]) < self.MAX_LISTED and alert.run_id not in group["run_ids"]:
            group["run_ids"].append(alert.run_id)

    def _notification(self, alert: Alert, partitions: list[str], run_ids: list[str], count: int,
                      grouped: bool) -> Notification | None:
        route = self.route(alert)
        if route is None:
            return None
        severity = alert.severity if alert.severity in SEVERITIES else route.severity
        title = alert.title if not grouped else f"{alert.title} and more: {alert.kind} x{count}"
        return Notification(webhook=route.webhook, severity=severity, pipeline=alert.pipeline, kind=alert.kind,
                            title=title, runbook=alert.runbook, partitions=sorted(p for p in partitions if p),
                            run_ids=[r for r in run_ids if r][: self.MAX_LISTED], count=count, grouped=grouped,
                            backfill=alert.backfill, first_failure_at=alert.occurred_at)

    def send(self, notification: Notification, retries: int = 1) -> int:
        """POST the notification's JSON to its webhook (timeout, one retry); returns the HTTP status."""
        data = json.dumps(notification.payload()).encode()
        last: Exception | None = None
        for attempt in range(retries + 1):
            request = urllib.request.Request(notification.webhook, data=data, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                    return response.status
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                last = exc
                if attempt < retries:
                    time.sleep(0.5)
        raise OSError(f"could not deliver alert to {notification.webhook}: {last}")


def runbook_url(failure_mode: str) -> str:
    """The runbook of a failure mode (`F1`..`F7`, `SLO`)."""
    return f"{RUNBOOK_BASE}{failure_mode}.md"
