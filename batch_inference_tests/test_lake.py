import pyarrow as pa
import pytest

from batch_inference.lake import Lake, PartitionMissingError
from batch_inference.validation import InvalidNameError, parse_landing_name, validate_partition_key


def test_write_read_replace(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    lake.write("predictions", "2026-01-01", pa.table({"x": [1, 2, 3]}))
    lake.write("predictions", "2026-01-01", pa.table({"x": [4, 5]}))
    assert lake.read("predictions", "2026-01-01").column("x").to_pylist() == [4, 5]
    assert lake.dates("predictions") == ["2026-01-01"]
    files = list((tmp_path / "lake/predictions/date=2026-01-01").iterdir())
    assert [f.name for f in files] == ["part-0.parquet"]


def test_failed_write_leaves_previous_partition(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    lake.write("predictions", "2026-01-01", pa.table({"x": [1, 2, 3]}))
    with pytest.raises(RuntimeError), lake.writer("predictions", "2026-01-01", pa.schema([("x", pa.int64())])) as w:
        w.write_table(pa.table({"x": [9]}))
        raise RuntimeError("crash mid-write")
    assert lake.read("predictions", "2026-01-01").column("x").to_pylist() == [1, 2, 3]
    assert len(list((tmp_path / "lake/predictions/date=2026-01-01").iterdir())) == 1


def test_missing_partition_is_named(tmp_path):
    with pytest.raises(PartitionMissingError, match="features partition for 2026-01-02"):
        Lake(str(tmp_path)).read("features", "2026-01-02")


@pytest.mark.filterwarnings("error::ResourceWarning")
def test_footer_reads_name_columns_rows_and_metadata(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    table = pa.table({"x": [1, 2, 3], "y": ["a", "b", "c"]}).replace_schema_metadata({"k": "v"})
    lake.write("predictions", "2026-01-01", table)
    schema = lake.schema("predictions", "2026-01-01")
    assert schema.names == ["x", "y"] and schema.metadata[b"k"] == b"v"
    assert lake.num_rows("predictions", "2026-01-01") == 3
    with pytest.raises(PartitionMissingError, match="predictions partition for 2026-01-02"):
        lake.schema("predictions", "2026-01-02")


@pytest.mark.parametrize("key", ["../../etc", "2026-13-01", "2026-02-30", "2026-1-1", "", "2026-01-01/..",
                                 "2026-01-01'; DROP TABLE x; --"])
def test_bad_partition_keys_rejected(tmp_path, key):
    with pytest.raises(InvalidNameError):
        validate_partition_key(key)
    with pytest.raises(InvalidNameError):
        Lake(str(tmp_path)).partition_dir("predictions", key)


@pytest.mark.parametrize("name", ["../transactions_2026-01-01.parquet", "transactions_2026-01-01.csv",
                                  "transactions_2026-02-31.parquet", "Transactions_2026-01-01.parquet", "x.parquet"])
def test_bad_landing_names_rejected(name):
    with pytest.raises(InvalidNameError):
        parse_landing_name(name)


def test_landing_name_parsed():
    assert parse_landing_name("transactions_2026-11-20.parquet") == ("transactions", "2026-11-20")


def test_asset_name_is_an_identifier(tmp_path):
    with pytest.raises(InvalidNameError):
        Lake(str(tmp_path)).partition_dir("../x", "2026-01-01")
