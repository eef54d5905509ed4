"""Landing files: bad files fail with a message naming the file; bad rows are quarantined."""

import json

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from batch_inference.generator import generate_transactions
from batch_inference.ingest import BadInputFileError, read_landing_file, split_valid

FS = pafs.LocalFileSystem()


def _write(path, table):
    pq.write_table(table, path)
    return str(path)


def test_missing_column_is_named(tmp_path):
    path = _write(tmp_path / "t.parquet", generate_transactions("2026-01-01", 10, drop_column="amount"))
    with pytest.raises(BadInputFileError, match=r"t\.parquet is missing required column\(s\) amount"):
        read_landing_file(FS, path)


def test_zero_byte_and_truncated_files(tmp_path):
    (tmp_path / "empty.parquet").write_bytes(b"")
    with pytest.raises(BadInputFileError, match="empty.parquet is empty"):
        read_landing_file(FS, str(tmp_path / "empty.parquet"))
    good = tmp_path / "good.parquet"
    _write(good, generate_transactions("2026-01-01", 1000))
    (tmp_path / "cut.parquet").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(BadInputFileError, match="cut.parquet is not a readable Parquet file"):
        read_landing_file(FS, str(tmp_path / "cut.parquet"))


def test_wrong_type_is_named(tmp_path):
    t = generate_transactions("2026-01-01", 10)
    t = t.set_column(t.schema.get_field_index("amount"), "amount", pa.array(["ten"] * 10))
    with pytest.raises(BadInputFileError, match="column 'amount' has type string"):
        read_landing_file(FS, _write(tmp_path / "t.parquet", t))


def test_valid_empty_file_is_a_quiet_day(tmp_path):
    t = generate_transactions("2026-01-01", 0)
    assert read_landing_file(FS, _write(tmp_path / "t.parquet", t)).num_rows == 0


def test_every_row_is_valid_or_quarantined_once():
    t = generate_transactions("2026-01-01", 20_000, corrupt_rate=0.05)
    valid, bad = split_valid(t)
    assert valid.num_rows + bad.num_rows == t.num_rows
    assert bad.num_rows > 500
    reasons = set(bad.column("reason").to_pylist())
    assert {"null amount", "non-finite amount", "unknown merchant_category", "null record_id",
            "duplicate record_id"} <= reasons
    assert any(r.startswith("amount out of range") for r in reasons)
    assert set(bad.column("stage").to_pylist()) == {"transactions"}
    ids = valid.column("record_id").to_pylist()
    assert len(ids) == len(set(ids)) and None not in ids
    original = json.loads(bad.column("original")[0].as_py())
    assert set(original) >= {"record_id", "amount", "merchant_category"}
