"""The landing sensor's scan: symlinks and entries outside the landing root are skipped, never read."""

import pyarrow.fs as pafs

from batch_inference.defs.card_fraud.generator import write_landing
from batch_inference.landing_scan import list_filesystem, scan_landing


def test_symlinks_are_skipped_with_a_problem_and_never_hashed(tmp_path):
    landing, outside = tmp_path / "landing", tmp_path / "outside"
    real = write_landing("2026-01-05", 10, landing)
    other = write_landing("2026-01-06", 10, outside)
    (landing / "transactions_2026-01-07.parquet").symlink_to(other)  # points outside the root
    (landing / "transactions_2026-01-08.parquet").symlink_to(real)  # a link, even inside
    result = scan_landing(list_filesystem(pafs.LocalFileSystem(), str(landing)), {})
    assert [f.name for f in result.changed] == ["transactions_2026-01-05.parquet"]
    skipped = dict(result.skipped)
    assert "symbolic link" in skipped["transactions_2026-01-07.parquet"]
    assert "symbolic link" in skipped["transactions_2026-01-08.parquet"]
    again = scan_landing(list_filesystem(pafs.LocalFileSystem(), str(landing)), result.cursor)
    assert again.changed == [] and again.skipped == []  # reported once, not every tick
