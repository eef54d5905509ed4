"""A tiny pooled asset for test_slot_release: it writes a marker file, then sleeps.

Env: SLOT_PROBE_MARKER (file written with the pid once the step runs), SLOT_PROBE_SLEEP (s).
"""

import os
import time
from pathlib import Path

import dagster as dg


@dg.asset(pool="gpu")
def slot_probe() -> int:
    """Hold the `gpu` pool for SLOT_PROBE_SLEEP seconds."""
    marker = os.environ.get("SLOT_PROBE_MARKER")
    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("SLOT_PROBE_SLEEP", "0")))
    return 1


defs = dg.Definitions(assets=[slot_probe], executor=dg.in_process_executor)
