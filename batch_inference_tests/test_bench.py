"""`make bench` stays runnable: a tiny run prints one well-formed JSON line per measurement."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_bench_prints_json_lines(tmp_path):
    env = dict(os.environ, BENCH_HOME=str(tmp_path / "bench"), BENCH_ROWS="20000", BENCH_REPEATS="1")
    proc = subprocess.run([sys.executable, "-m", "batch_inference.defs.card_fraud.bench"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [line["name"] for line in lines] == ["forward_only", "plain_loop", "engine", "engine_shadow", "materialize"]
    for line in lines:
        assert line["rows_per_s"] > 0 and line["peak_rss_mb"] > 0 and line["seconds"] > 0
    assert {line["rows"] for line in lines[1:]} == {20_000}
