"""Landing files: bad files fail with a message naming the file; bad rows are quarantined."""

import json

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from batch_inference.defs.card_fraud.generator import generate_transactions
from batch_inference.defs.card_fraud.schemas import TransactionsSchema
from batch_inference.defs.card_fraud.vocabulary import TRANSACTION_SCHEMA
from batch_inference.ingest import BadInputFileError, read_landing_file, read_landing_ids, screen_rows

FS = pafs.LocalFileSystem()


def _write(path, table):
    pq.write_table(table, path)
    return str(path)


def test_missing_column_is_named(tmp_path):
    path = _write(tmp_path / "t.parquet", generate_transactions("2026-01-01", 10, drop_column="amount"))
    with pytest.raises(BadInputFileError, match=r"t\.parquet is missing required column\(s\) amount"):
        read_landing_file(FS, path, TRANSACTION_SCHEMA)


def test_zero_byte_and_truncated_files(tmp_path):
    (tmp_path / "empty.parquet").write_bytes(b"")
    with pytest.raises(BadInputFileError, match="empty.parquet is empty"):
        read_landing_file(FS, str(tmp_path / "empty.parquet"), TRANSACTION_SCHEMA)
    good = tmp_path / "good.parquet"
    _write(good, generate_transactions("2026-01-01", 1000))
    (tmp_path / "cut.parquet").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(BadInputFileError, match="cut.parquet is not a readable Parquet file"):
        read_landing_file(FS, str(tmp_path / "cut.parquet"), TRANSACTION_SCHEMA)


def test_wrong_type_is_named(tmp_path):
    t = generate_transactions("2026-01-01", 10)
    t = t.set_column(t.schema.get_field_index("amount"), "amount", pa.array(["ten"] * 10))
    with pytest.raises(BadInputFileError, match="amount.*string"):
        read_landing_file(FS, _write(tmp_path / "t.parquet", t), TRANSACTION_SCHEMA)


def test_valid_empty_file_is_a_quiet_day(tmp_path):
    t = generate_transactions("2026-01-01", 0)
    assert read_landing_file(FS, _write(tmp_path / "t.parquet", t), TRANSACTION_SCHEMA).num_rows == 0


def test_every_row_is_valid_or_quarantined_once():
    t = generate_transactions("2026-01-01", 20_000, corrupt_rate=0.05)
    valid, bad = screen_rows(t, TransactionsSchema, "transactions")
    assert valid.num_rows + bad.num_rows == t.num_rows
    assert bad.num_rows > 500
    reasons = set(bad.column("reason").to_pylist())
    assert {"null record_id", "duplicate record_id"} <= reasons
    for column in ("amount", "merchant_category"):
        assert any(r.startswith(f"{column}: ") for r in reasons), column
    assert any("greater_than_or_equal_to(0)" in r for r in reasons)
    assert set(bad.column("stage").to_pylist()) == {"transactions"}
    ids = valid.column("record_id").to_pylist()
    assert len(ids) == len(set(ids)) and None not in ids
    original = json.loads(bad.column("original")[0].as_py())
    assert set(original) >= {"record_id", "amount", "merchant_category"}


DAY = "2026-01-01"
# One bad row per constrained column and constraint: the row rules come from the schema the check uses.
BAD_ROWS = [
    ("card_present", None, "card_present"), ("customer_id", -3, "customer_id"),
    ("customer_id", None, "customer_id"), ("amount", None, "amount"), ("amount", float("nan"), "amount"),
    ("amount", float("inf"), "amount"), ("amount", -1.0, "amount"), ("amount", 2e6, "amount"),
    ("merchant_category", "unknown", "merchant_category"), ("merchant_country", "XX", "merchant_country"),
    ("card_country", None, "card_country"), ("card_present", None, "card_present"),
    ("event_time", None, "event_time"), ("record_id", None, "null record_id"), ("record_id", "", "empty record_id"),
]


@pytest.mark.parametrize(("column", "value", "reason"), BAD_ROWS, ids=[f"{c}={v!r}" for c, v, _ in BAD_ROWS])
def test_a_bad_row_is_quarantined_and_the_day_scored(column, value, reason):
    t = generate_transactions(DAY, 50)
    values = t.column(column).to_pylist()
    values[7] = value
    t = t.set_column(t.schema.get_field_index(column), column, pa.array(values, t.schema.field(column).type))
    valid, bad = screen_rows(t, TransactionsSchema, "transactions", event_time="event_time", date=DAY)
    assert (valid.num_rows, bad.num_rows) == (49, 1)
    assert bad.column("reason")[0].as_py().startswith(reason)
    assert TransactionsSchema.validate(valid.to_pandas(), lazy=True) is not None  # the check passes


def test_events_outside_the_day_beyond_the_tolerance_are_quarantined():
    import datetime as dt

    t = generate_transactions(DAY, 20)
    times = t.column("event_time").to_pylist()
    times[0] = dt.datetime(2025, 12, 31, 23, 30, tzinfo=dt.UTC)  # 30 min early: inside a 1 h tolerance
    times[1] = dt.datetime(2025, 12, 30, 12, 0, tzinfo=dt.UTC)  # two days early
    times[2] = dt.datetime(2026, 1, 2, 3, 0, tzinfo=dt.UTC)  # 3 h late
    t = t.set_column(1, "event_time", pa.array(times, t.schema.field("event_time").type))
    valid, bad = screen_rows(t, TransactionsSchema, "transactions", event_time="event_time", date=DAY,
                             tolerance=dt.timedelta(hours=1))
    assert valid.num_rows == 18
    assert all("outside the partition's day 2026-01-01" in r for r in bad.column("reason").to_pylist())


def test_a_symlinked_landing_file_is_refused(tmp_path):
    real = tmp_path / "elsewhere.parquet"
    _write(real, generate_transactions(DAY, 5))
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "transactions_2026-01-01.parquet").symlink_to(real)
    with pytest.raises(BadInputFileError, match="symbolic link"):
        read_landing_file(FS, str(landing / "transactions_2026-01-01.parquet"), TRANSACTION_SCHEMA, root=str(landing))


# One value of invalid UTF-8 (a lone surrogate, a stray byte, a cut multi-byte sequence) in any text
# column: the key, a category, free text. It is quarantined with the column and the value named.
INVALID_BYTES = [b"\xff", "\ud800".encode("utf-8", "surrogatepass"), b"caf\xc3", b"ok\x80tail"]


def _with_bytes(table: pa.Table, column: str, row: int, raw: bytes) -> pa.Table:
    """`table` with the raw bytes `raw` as `column`'s value in `row` (a string column, unvalidated)."""
    values = table.column(column).cast(pa.binary()).to_pylist()
    values[row] = raw
    field = table.schema.field(column)
    return table.set_column(table.schema.get_field_index(column), field,
                            pa.array(values, pa.binary()).view(field.type))


def _pipelines_text_columns() -> list[tuple[str, str]]:
    from batch_inference.pipelines import discover

    found = []
    for name, info in sorted(discover().items()):
        if info.upstream_key is None:  # landing files; an upstream-fed input has the same screen (test_store_demand)
            found += [(name, f.name) for f in info.arrow_schema if pa.types.is_string(f.type)]
    return found


@pytest.mark.parametrize("raw", INVALID_BYTES, ids=repr)
@pytest.mark.parametrize(("pipeline", "column"), _pipelines_text_columns())
def test_invalid_utf8_in_any_text_column_quarantines_the_row(tmp_path, pipeline, column, raw):
    from batch_inference.pipelines import discover, write_landing_file

    info = discover()[pipeline]
    spec, schema, rules = info.spec.input, info.arrow_schema, info.rules
    path = write_landing_file(DAY, 30, tmp_path, pipeline=pipeline)
    pq.write_table(_with_bytes(pq.read_table(path), column, 4, raw), path)
    table = read_landing_file(FS, str(path), schema)
    valid, bad = screen_rows(table, rules, spec.landing_entity, key=spec.key, event_time=spec.event_time, date=DAY)
    assert (valid.num_rows, bad.num_rows) == (29, 1)
    reason = bad.column("reason")[0].as_py()
    assert reason.startswith(f"{column}: invalid UTF-8 in value '") and "\\x" in reason
    valid.validate(full=True)  # nothing that reaches the lake carries invalid UTF-8
    bad.validate(full=True)
    assert rules.validate(valid.to_pandas(), lazy=True) is not None  # the input schema check passes
    json.loads(bad.column("original")[0].as_py())
    ids = read_landing_ids(FS, str(path), spec.key)  # completeness sees the key as the quarantine names it
    assert set(bad.column("record_id").to_pylist()) <= set(ids.to_pylist())


def test_a_landing_file_of_byte_arrays_is_read_as_text_and_each_value_judged(tmp_path):
    """Parquet byte arrays without the UTF-8 annotation (pyarrow `binary`) in a text column."""
    t = generate_transactions(DAY, 20)
    ids = t.column("record_id").cast(pa.binary()).to_pylist()
    ids[2] = b"\xfe\xff"
    t = t.set_column(0, pa.field("record_id", pa.binary()), pa.array(ids, pa.binary()))
    table = read_landing_file(FS, _write(tmp_path / "t.parquet", t), TRANSACTION_SCHEMA)
    valid, bad = screen_rows(table, TransactionsSchema, "transactions")
    assert (valid.num_rows, bad.column("reason").to_pylist()) == (19, ["record_id: invalid UTF-8 in value '\\xfe\\xff'"])


def test_an_error_while_screening_rows_is_classified_permanent():
    """Whatever escapes the row screen is not retried (unknown errors are permanent, ArrowException too)."""
    from batch_inference.failures import is_permanent

    t = _with_bytes(generate_transactions(DAY, 5), "record_id", 0, b"\xff")
    with pytest.raises(pa.ArrowException) as raised:
        t.column("record_id").to_numpy(zero_copy_only=False)  # what the key screen used to do
    assert is_permanent(raised.value)
    valid, bad = screen_rows(t, TransactionsSchema, "transactions")
    assert (valid.num_rows, bad.num_rows) == (4, 1)
