"""The landing sensor's scan: symlinks and entries outside the landing root are skipped, never read."""

import dataclasses

import pyarrow.fs as pafs

from batch_inference.defs.card_fraud import generator
from batch_inference.landing_scan import list_filesystem, scan_landing


def write_landing(date: str, rows: int, landing_dir):
    """One transactions file alone (the generator also lands that day's labels, another entity)."""
    path = generator.write_landing(date, rows, landing_dir)
    for labels in path.parent.glob("fraud_labels_*.parquet"):
        labels.unlink()
    return path


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


def _same_size_correction(path, table) -> None:
    """Rewrite `path` with `table` (other content, same byte size) and restore the modification time."""
    import os

    import pyarrow.parquet as pq

    before = os.stat(path)
    pq.write_table(table, path, compression="none", use_dictionary=False, write_statistics=False)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_a_corrected_file_with_the_same_size_and_mtime_is_rehashed(tmp_path):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from batch_inference.defs.card_fraud.generator import generate_transactions

    landing = tmp_path / "landing"
    landing.mkdir()
    path = landing / "transactions_2026-01-05.parquet"
    table = generate_transactions("2026-01-05", 50)
    pq.write_table(table, path, compression="none", use_dictionary=False, write_statistics=False)
    fs = pafs.LocalFileSystem()
    first = scan_landing(list_filesystem(fs, str(landing)), {})  # checked now; corrected later
    assert [f.name for f in first.changed] == [path.name]
    corrected = table.set_column(6, "amount", pc.add(table.column("amount"), pa.scalar(1.0)))
    _same_size_correction(path, corrected)
    again = scan_landing(list_filesystem(fs, str(landing)), first.cursor)
    assert [f.name for f in again.changed] == [path.name]
    assert again.changed[0].digest != first.changed[0].digest


def test_unchanged_files_are_not_rehashed_until_the_full_pass(tmp_path):
    import time

    landing = tmp_path / "landing"
    write_landing("2026-01-05", 10, landing)
    hashed: list[str] = []

    def listings():
        found = list_filesystem(pafs.LocalFileSystem(), str(landing))
        return [dataclasses.replace(x, digest=lambda x=x: hashed.append(x.name) or x.digest()) for x in found]

    now = time.time_ns() + 10**10  # checked well after the file was written
    cursor = scan_landing(listings(), {}, now_ns=now).cursor
    assert len(hashed) == 1
    quiet = scan_landing(listings(), cursor, now_ns=now + 10**9, full_pass_seconds=3600)
    assert len(hashed) == 1 and quiet.changed == []
    full = scan_landing(listings(), cursor, now_ns=now + 3601 * 10**9, full_pass_seconds=3600)
    assert len(hashed) == 2 and full.changed == []  # re-hashed, same content: no run
    assert full.cursor["transactions_2026-01-05.parquet"]["checked_ns"] == now + 3601 * 10**9


def test_the_full_pass_hashes_a_few_files_per_tick_longest_unchecked_first(tmp_path):
    import time

    landing = tmp_path / "landing"
    for day in ("2026-01-05", "2026-01-06", "2026-01-07"):
        write_landing(day, 10, landing)
    now = time.time_ns() + 10**10
    cursor = scan_landing(list_filesystem(pafs.LocalFileSystem(), str(landing)), {}, now_ns=now).cursor
    cursor["transactions_2026-01-07.parquet"]["checked_ns"] -= 10**9  # checked a second earlier than the others
    later = now + 3601 * 10**9
    tick = scan_landing(list_filesystem(pafs.LocalFileSystem(), str(landing)), cursor, now_ns=later,
                        full_pass_seconds=3600, full_pass_files=2)
    rehashed = sorted(n for n, e in tick.cursor.items() if e["checked_ns"] == later)
    assert rehashed == ["transactions_2026-01-05.parquet", "transactions_2026-01-07.parquet"]
    assert tick.changed == []
    following = scan_landing(list_filesystem(pafs.LocalFileSystem(), str(landing)), tick.cursor,
                             now_ns=later + 10**9, full_pass_seconds=3600, full_pass_files=2)
    assert following.cursor["transactions_2026-01-06.parquet"]["checked_ns"] == later + 10**9
