"""`make demo` with every pipeline: landing-fed and upstream-fed, classifier, embeddings and regression."""

import subprocess
import sys

import pytest

from batch_inference.pipelines import discover
from batch_inference_tests.conftest import subprocess_env

pytestmark = pytest.mark.integration


def test_the_demo_scores_checks_and_publishes_every_pipeline(home):
    env = {**subprocess_env(home), "DEMO_DAYS": "3", "DEMO_ROWS_PER_DAY": "600"}
    env.pop("DEMO_PIPELINES", None)
    proc = subprocess.run([sys.executable, "-m", "batch_inference.demo"], env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = sorted(discover())
    assert {"card_fraud", "support_tickets", "store_demand"} <= set(names)
    assert "materialized the upstream store_demand/store_sales_raw for 3 days" in proc.stdout
    lines = proc.stdout.splitlines()
    for name in names:  # each pipeline's per-day table: three days, every check passed, no WARN
        start = lines.index(name)
        days = [line for line in lines[start + 2:start + 5] if line.strip()[:2] == "20"]
        assert len(days) == 3, "\n".join(lines[start:start + 6])
        assert all(line.endswith("4/4 passed") for line in days), "\n".join(days)
