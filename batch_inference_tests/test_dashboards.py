"""Grafana dashboards: valid structure, PromQL that parses, and only metric names a real push exposes."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from batch_inference.observability import metric_names
from batch_inference_tests.test_observability_metrics import (
    needs_pushgateway,
    push_everything,
    running_pushgateway,
)
from batch_inference_tests.test_sre_rules import needs_promtool, promql_metric_names

GRAFANA = Path(__file__).resolve().parents[1] / "deploy" / "grafana"
DASHBOARDS = ("executive", "oncall", "debug")


def _load(name: str) -> dict:
    return json.loads((GRAFANA / f"{name}.json").read_text())


def _exprs(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", var["definition"]))
    return exprs


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_structure(name):
    dash = _load(name)
    assert dash["title"].strip() and re.fullmatch(r"[a-z0-9-]{1,40}", dash["uid"])
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["pipeline"]["type"] == "query"
    assert len(dash["panels"]) >= 6
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert panel["title"].strip() and panel["type"] in {"stat", "timeseries", "table", "bargauge", "gauge"}
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"] == panel["datasource"]
            assert 'pipeline=~"$pipeline"' in target["expr"], (name, panel["title"])


def test_dashboard_uids_are_unique_and_cover_the_key_signals():
    dashboards = [_load(n) for n in DASHBOARDS]
    assert len({d["uid"] for d in dashboards}) == len(dashboards)
    exprs = " ".join(e for d in dashboards for e in _exprs(d))
    for signal in ("runs_total", "published_partition_timestamp_seconds", "cost_per_million_rows",
                   "publish_freshness_lag_seconds", "rows_per_second", "batch_duration_seconds_bucket",
                   "quarantined_rows", "drift_max_psi", "cpu_utilization_ratio", "recovery_time_seconds",
                   "detection_time_seconds"):
        assert f"batch_inference_{signal}" in exprs, signal


def test_dashboards_use_only_metrics_observability_pushes():
    known = set(metric_names())
    for name in DASHBOARDS:
        for expr in _exprs(_load(name)):
            names = promql_metric_names(expr)
            assert names and names <= known, (name, expr, names - known)


@needs_promtool
def test_dashboard_queries_parse(tmp_path):
    """promtool parses every query as a recording rule (the $pipeline variable replaced by a regex)."""
    rules = [{"record": f"dashboard:{name}:{i}", "expr": expr.replace("$pipeline", ".*")}
             for name in DASHBOARDS for i, expr in enumerate(_exprs(_load(name)))]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
@needs_pushgateway
def test_dashboard_metrics_exist_in_a_real_push(tmp_path):
    with running_pushgateway(tmp_path / "pushgateway.log") as url:
        push_everything(url)
        exposed = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    for name in DASHBOARDS:
        for expr in _exprs(_load(name)):
            for metric in promql_metric_names(expr):
                assert re.search(rf"^{metric}{{", exposed, re.M), (name, metric)
