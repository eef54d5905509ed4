"""The streamed steps (issue 20, memory) give exactly what the whole-table versions gave: ingest batch by
batch with duplicates across batches, features by DuckDB `COPY ... TO`, schema checks row group by row
group, completeness over files, publish by file copy."""

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from batch_inference.defs.card_fraud.features import FEATURES_SQL, compute_features
from batch_inference.defs.card_fraud.generator import generate_transactions
from batch_inference.defs.card_fraud.schemas import TransactionsSchema
from batch_inference.defs.card_fraud.vocabulary import TRANSACTION_SCHEMA
from batch_inference.features import copy_feature_sql
from batch_inference.ingest import (
    open_landing_file,
    read_landing_file,
    read_landing_ids,
    screen_batches,
    screen_rows,
    write_landing_ids,
)
from batch_inference.lake import Lake
from batch_inference.quality.completeness import check_completeness, check_completeness_files
from batch_inference.quality.schema_validation import validate, validate_parquet

FS = pafs.LocalFileSystem()
DAY = "2026-01-01"


def _landing_with_duplicates_across_row_groups(path) -> str:
    """5,000 rows in row groups of 1,000: corrupt rows (nulls, in-group duplicates, broken rules), ids of
    the first row group repeated in the last ones, and a row out of the day."""
    t = generate_transactions(DAY, 5_000, corrupt_rate=0.05)
    ids = t.column("record_id").to_pylist()
    for i in range(60):
        ids[4_000 + i] = ids[i]  # first seen in row group 0, again in row group 4
        ids[2_500 + i] = ids[1_200 + i]  # row group 1 -> row group 2
    times = t.column("event_time").to_pylist()
    times[3_333] = times[3_333] + dt.timedelta(days=3)
    t = t.set_column(0, "record_id", pa.array(ids, pa.string()))
    t = t.set_column(t.schema.get_field_index("event_time"), "event_time",
                     pa.array(times, t.schema.field("event_time").type))
    pq.write_table(t, path, row_group_size=1_000)
    return str(path)


def test_a_file_screened_batch_by_batch_is_split_exactly_as_a_whole_read(tmp_path):
    path = _landing_with_duplicates_across_row_groups(tmp_path / "transactions.parquet")
    kwargs = {"key": "record_id", "event_time": "event_time", "date": DAY, "tolerance": dt.timedelta(hours=1)}
    whole_valid, whole_bad = screen_rows(read_landing_file(FS, path, TRANSACTION_SCHEMA), TransactionsSchema,
                                         "transactions", **kwargs)
    landing = open_landing_file(FS, path, TRANSACTION_SCHEMA)
    assert landing.num_rows == 5_000
    pairs = list(screen_batches(landing, TransactionsSchema, "transactions", rows=700, **kwargs))
    assert len(pairs) == 8  # several batches, cutting across row groups
    valid = pa.concat_tables(v for v, _ in pairs)
    bad = pa.concat_tables(b for _, b in pairs)
    assert valid.equals(whole_valid)
    assert bad.equals(whole_bad)
    reasons = bad.column("reason").to_pylist()
    assert reasons.count("duplicate record_id") >= 120  # the repeats across row groups, found as before
    assert any(r.startswith("event_time: ") or "outside the partition's day" in r for r in reasons)
    assert valid.num_rows + bad.num_rows == 5_000
    assert pc.count_distinct(valid.column("record_id")).as_py() == valid.num_rows


def test_features_copied_by_duckdb_equal_the_in_memory_query(tmp_path):
    tx = generate_transactions(DAY, 20_000)
    pq.write_table(tx, tmp_path / "in.parquet", row_group_size=3_000)
    rows = copy_feature_sql(FEATURES_SQL, str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"), 1_000)
    copied = pq.ParquetFile(tmp_path / "out.parquet")
    assert rows == tx.num_rows == copied.metadata.num_rows
    assert [copied.metadata.row_group(i).num_rows for i in range(copied.num_row_groups)] == [1_000] * 20
    assert copied.read().equals(compute_features(tx))


def test_schema_check_row_group_by_row_group_sees_duplicates_across_groups(tmp_path):
    valid, _ = screen_rows(generate_transactions(DAY, 3_000), TransactionsSchema, "transactions")
    assert validate_parquet(TransactionsSchema, _parquet(tmp_path / "ok.parquet", valid)).passed
    ids = valid.column("record_id").to_pylist()
    ids[2_900] = ids[5]  # row group 0 and row group 2
    amounts = valid.column("amount").to_pylist()
    amounts[1_500] = -1.0
    broken = valid.set_column(0, "record_id", pa.array(ids, pa.string()))
    broken = broken.set_column(broken.schema.get_field_index("amount"), "amount", pa.array(amounts, pa.float64()))
    path = tmp_path / "broken.parquet"
    whole = validate(TransactionsSchema, broken)
    for local in (str(path), None):  # DuckDB over the file, or the column alone
        streamed = validate_parquet(TransactionsSchema, _parquet(path, broken), local)
        assert not streamed.passed
        assert streamed.failing_columns == whole.failing_columns == ["amount", "record_id"]
        assert streamed.failure_count == whole.failure_count
        assert streamed.rows == whole.rows


def _parquet(path, table) -> pq.ParquetFile:
    pq.write_table(table, path, row_group_size=1_000)
    return pq.ParquetFile(path)


def test_completeness_over_files_equals_in_memory(tmp_path):
    path = _landing_with_duplicates_across_row_groups(tmp_path / "landing.parquet")
    valid, bad = screen_rows(read_landing_file(FS, path, TRANSACTION_SCHEMA), TransactionsSchema, "transactions")
    scored = valid.slice(10)  # ten rows lost
    pq.write_table(scored, tmp_path / "scored.parquet")
    pq.write_table(bad, tmp_path / "q.parquet")
    ids_file = write_landing_ids(FS, path, "record_id", str(tmp_path / "ids.parquet"))
    files = check_completeness_files([(ids_file, "record_id")], [(str(tmp_path / "scored.parquet"), "record_id")],
                                     [(str(tmp_path / "q.parquet"), "record_id")])
    memory = check_completeness(read_landing_ids(FS, path), scored.column("record_id"), bad.column("record_id"))
    assert files == memory
    assert not files.passed and files.landing_rows == files.scored_rows + files.quarantined_rows + 10


def test_publish_copies_the_partition_byte_for_byte(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    table = generate_transactions(DAY, 1_000)
    lake.write("predictions", DAY, table)
    uri = lake.copy("predictions", DAY, "serving_predictions")
    assert uri.endswith("serving_predictions/date=2026-01-01/part-0.parquet")
    assert lake.read("serving_predictions", DAY).equals(table)
    assert lake.num_rows("serving_predictions", DAY) == 1_000
    assert lake.list_files(lake.partition_dir("serving_predictions", DAY)) == ["part-0.parquet"]
