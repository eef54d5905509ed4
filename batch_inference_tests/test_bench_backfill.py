"""`make bench-backfill` stays runnable: a tiny backfill through a real `dagster dev`, once whole and once
with a truncated landing file, prints one well-formed JSON line each with what it measured."""

import json
import subprocess
import sys

import pytest

from batch_inference.settings import environment_copy

pytestmark = pytest.mark.integration


def test_bench_backfill_prints_json_lines_and_publishes_all_but_the_bad_day(tmp_path):
    env = environment_copy(BENCH_BACKFILL_HOME=str(tmp_path / "bench"), BENCH_BACKFILL_DAYS="3",
                           BENCH_BACKFILL_ROWS="2000", BENCH_BACKFILL_STRATEGIES="ranged",
                           BENCH_BACKFILL_BAD_DAYS="1")
    proc = subprocess.run([sys.executable, "-m", "batch_inference.bench_backfill"], env=env, capture_output=True,
                          text=True, timeout=1_200, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {line["strategy"]: line for line in map(json.loads, proc.stdout.splitlines()) if "strategy" in line}
    assert set(lines) == {"ranged", "ranged_bad_days"}, proc.stdout[-2000:]
    whole, bad = lines["ranged"], lines["ranged_bad_days"]
    assert whole["status"] == "COMPLETED_SUCCESS" and whole["published_first_pass"] == 3
    assert bad["status"] == "COMPLETED_FAILED" and bad["bad_days"] == 1 and bad["published_first_pass"] == 2
    assert whole["scored_days"] == 3 and bad["scored_days"] == 2  # the bad day never reaches the engine
    for line in (whole, bad):
        assert line["partitions"] == 3 and line["runs"] >= 2 and line["wall_seconds"] > 0
        assert line["event_log_mb"] > 0
