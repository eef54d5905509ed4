"""Prometheus alerting rules: promtool validates and unit-tests them; every rule links an existing runbook."""

from __future__ import annotations

import re
import shutil
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

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
RULES_TEST = REPO / "deploy" / "prometheus" / "rules_test.yml"
RUNBOOKS = REPO / "docs" / "runbooks"
RUNBOOK_URL = re.compile(r"^https://github\.com/[\w.-]+/batch_inference/blob/main/(docs/runbooks/(F[1-7]|SLO)\.md)$")
FAILURE_MODES = [f"F{n}" for n in range(1, 8)]
needs_promtool = pytest.mark.skipif(not shutil.which("promtool"),
                                    reason="promtool comes with Debian's `prometheus` package (.ci/run)")

_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
             "group_right", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (functions, keywords, labels, strings, durations removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)
    text = re.sub(r"(?<![\w.])\d+(\.\d+)?([eE][+-]?\d+)?", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", text):
        rest = text[match.end():].lstrip()
        if not rest.startswith("(") and match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promql_metric_names_extraction():
    expr = ('histogram_quantile(0.99, sum by (le, pipeline) (rate(batch_inference_x_bucket{job="a",le=~"1e3"}[5m])))'
            ' > 2 * 86400 + 1e9 unless on (pipeline) time() - batch_inference_y{pipeline=~"$pipeline"}')
    assert promql_metric_names(expr) == {"batch_inference_x_bucket", "batch_inference_y"}


@needs_promtool
def test_promtool_check_rules():
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_pass():
    result = subprocess.run(["promtool", "test", "rules", str(RULES_TEST)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing():
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    firing = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])
              if case.get("exp_alerts")}
    silent = [case["alertname"] for test in tests for case in test.get("alert_rule_test", [])
              if not case.get("exp_alerts")]
    alerts = {rule["alert"] for rule in _rules()}
    assert alerts - firing == set()
    assert len(silent) >= 2  # and some cases prove a rule stays silent


def test_every_rule_has_severity_summary_and_an_existing_runbook():
    modes = set()
    for rule in _rules():
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), rule["alert"]
        match = RUNBOOK_URL.match(annotations["runbook_url"])
        assert match, annotations["runbook_url"]
        assert (REPO / match.group(1)).is_file(), match.group(1)
        assert rule["labels"]["failure_mode"] == match.group(2), rule["alert"]
        modes.add(match.group(2))
    assert set(FAILURE_MODES) <= modes
    slo_pages = [r for r in _rules() if r["labels"]["failure_mode"] == "SLO" and r["labels"]["severity"] == "page"]
    assert any("[7d]" in r["expr"] and "0.99" in r["expr"] for r in slo_pages)


@pytest.mark.parametrize("mode", [*FAILURE_MODES, "SLO"])
def test_runbooks_are_complete(mode):
    text = (RUNBOOKS / f"{mode}.md").read_text()
    for section in ("## Symptom", "## Confirm", "## Mitigate", "## Verify recovery"):
        assert section in text, (mode, section)
    assert "```" in text  # exact commands or SQL, not prose only
    alerts = [r["alert"] for r in _rules() if r["labels"]["failure_mode"] == mode]
    assert alerts and all(a in text for a in alerts), alerts


def test_rules_use_only_metrics_observability_pushes():
    known = set(metric_names())
    for rule in _rules():
        names = promql_metric_names(rule["expr"])
        assert names and names <= known, (rule["alert"], names - known)


@pytest.mark.integration
@needs_pushgateway
def test_rule_metrics_exist_in_a_real_push(tmp_path):
    with running_pushgateway(tmp_path / "pushgateway.log") as url:
        push_everything(url)
        exposed = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    for rule in _rules():
        for name in promql_metric_names(rule["expr"]):
            assert re.search(rf"^{name}{{", exposed, re.M), (rule["alert"], name)
