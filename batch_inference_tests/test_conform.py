"""conform_table: lossless widening accepted, lossy or ambiguous conversions refused by name."""

from __future__ import annotations

import datetime as dt
import re

import pyarrow as pa
import pytest

from batch_inference.conform import BadInputFileError, conform_table

UTC_US = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema([
    ("record_id", pa.string()),
    ("event_time", UTC_US),
    ("customer_id", pa.int64()),
    ("amount", pa.float64()),
    ("card_present", pa.bool_()),
    ("is_fraud", pa.int8()),
])
T0 = dt.datetime(2026, 1, 5, 12, 30, tzinfo=dt.UTC)


def _good(**overrides: pa.Array) -> pa.Table:
    columns = {
        "record_id": pa.array(["a", "b"]),
        "event_time": pa.array([T0, T0 + dt.timedelta(seconds=1)], UTC_US),
        "customer_id": pa.array([1, 2], pa.int64()),
        "amount": pa.array([1.5, 2.25]),
        "card_present": pa.array([True, False]),
        "is_fraud": pa.array([0, 1], pa.int8()),
    }
    columns.update(overrides)
    return pa.table(columns)


def _refused(table: pa.Table, column: str, found: str, expected: str, example: str) -> str:
    with pytest.raises(BadInputFileError) as info:
        conform_table(table, SCHEMA, "landing/t.parquet")
    message = str(info.value)
    for part in ("landing/t.parquet", f"column {column!r}", f"type {found}", f"expected {expected}",
                 f"example value: {example}"):
        assert part in message, message
    return message


def test_identical_table_passes_unchanged() -> None:
    table = _good()
    assert conform_table(table, SCHEMA, "t").equals(table.cast(SCHEMA))


@pytest.mark.parametrize("column,array", [
    ("customer_id", pa.array([1, 2], pa.int8())),
    ("customer_id", pa.array([1, 2], pa.int16())),
    ("customer_id", pa.array([1, 2], pa.int32())),
    ("customer_id", pa.array([1, 2], pa.uint32())),
    ("is_fraud", pa.array([0, 1], pa.int64())),  # narrowing whose values fit: no value is lost
    ("amount", pa.array([1.5, 2.25], pa.float32())),
    ("amount", pa.array([1, 2], pa.int64())),  # exact integers in a float column
    ("record_id", pa.array(["a", "b"]).dictionary_encode()),
    ("record_id", pa.array(["a", "b"], pa.large_string())),
    ("event_time", pa.array([T0, T0 + dt.timedelta(seconds=1)], pa.timestamp("ns", tz="UTC"))),
    ("event_time", pa.array([T0, T0 + dt.timedelta(seconds=1)], pa.timestamp("s", tz="UTC"))),
    ("event_time", pa.array([T0, T0 + dt.timedelta(seconds=1)], pa.timestamp("ms", tz="Europe/Berlin"))),
    ("amount", pa.nulls(2, pa.null())),
])
def test_lossless_widening_is_accepted(column: str, array: pa.Array) -> None:
    out = conform_table(_good(**{column: array}), SCHEMA, "t")
    assert out.schema == SCHEMA
    if pa.types.is_null(array.type):
        assert out.column(column).null_count == 2
    else:
        assert out.column(column).to_pylist() == array.to_pylist()


def test_time_zones_are_converted_to_the_same_instant() -> None:
    berlin = pa.array([T0], pa.timestamp("ms", tz="Europe/Berlin"))
    table = _good(event_time=pa.concat_arrays([berlin, berlin]))
    assert conform_table(table, SCHEMA, "t").column("event_time")[0].as_py() == T0


def test_column_order_and_extra_columns() -> None:
    table = _good().append_column("extra", pa.array([1, 2]))
    shuffled = table.select(list(reversed(table.column_names)))
    out = conform_table(shuffled, SCHEMA, "t")
    assert out.column_names == SCHEMA.names
    assert out.equals(_good().cast(SCHEMA))


def test_missing_columns_are_named_with_the_columns_found() -> None:
    table = _good().drop_columns(["amount", "is_fraud"])
    with pytest.raises(BadInputFileError, match=r"t\.parquet is missing required column\(s\) amount, is_fraud "
                                                r"\(found: record_id, event_time, customer_id, card_present\)"):
        conform_table(table, SCHEMA, "landing/t.parquet")


def test_epoch_seconds_in_a_timestamp_column() -> None:
    epoch = int(T0.timestamp())
    _refused(_good(event_time=pa.array([epoch, epoch + 1])), "event_time", "int64",
             "timestamp[us, tz=UTC]", str(epoch))


def test_naive_timestamps_are_ambiguous() -> None:
    naive = pa.array([T0.replace(tzinfo=None)] * 2, pa.timestamp("us"))
    message = _refused(_good(event_time=naive), "event_time", "timestamp[us]", "timestamp[us, tz=UTC]",
                       "datetime.datetime(2026, 1, 5, 12, 30)")
    assert "ambiguous" in message


def test_text_timestamps_and_dates() -> None:
    _refused(_good(event_time=pa.array(["2026-01-05T12:30:00Z"] * 2)), "event_time", "string",
             "timestamp[us, tz=UTC]", "'2026-01-05T12:30:00Z'")
    _refused(_good(event_time=pa.array([T0.date()] * 2)), "event_time", "date32[day]",
             "timestamp[us, tz=UTC]", "datetime.date(2026, 1, 5)")


def test_sub_unit_precision_would_be_truncated() -> None:
    ns = pa.array([1_767_616_200_000_000_001, 1_767_616_200_000_000_000], pa.timestamp("ns", tz="UTC"))
    _refused(_good(event_time=ns), "event_time", "timestamp[ns, tz=UTC]", "timestamp[us, tz=UTC]", "")


def test_numbers_stored_as_text() -> None:
    _refused(_good(amount=pa.array(["1.5", "2.25"])), "amount", "string", "double", "'1.5'")
    _refused(_good(customer_id=pa.array(["1", "2"])), "customer_id", "string", "int64", "'1'")


@pytest.mark.parametrize("value", [2, 1, 0])
def test_integers_in_a_boolean_column(value: int) -> None:
    _refused(_good(card_present=pa.array([value, 0], pa.int64())), "card_present", "int64", "bool",
             str(value) if value else "0")


def test_floats_in_an_integer_column() -> None:
    _refused(_good(customer_id=pa.array([1.0, 2.5])), "customer_id", "double", "int64", "1.0")


def test_integers_out_of_range() -> None:
    _refused(_good(is_fraud=pa.array([0, 300], pa.int64())), "is_fraud", "int64", "int8", "300")
    _refused(_good(customer_id=pa.array([1, 2**63], pa.uint64())), "customer_id", "uint64", "int64",
             str(2**63))


def test_integers_that_a_float_cannot_hold_exactly() -> None:
    big = 2**53 + 1
    _refused(_good(amount=pa.array([1, big], pa.int64())), "amount", "int64", "double", str(big))


def test_float64_narrowing_only_when_exact() -> None:
    schema = pa.schema([("x", pa.float32())])
    exact = conform_table(pa.table({"x": pa.array([0.5, float("nan"), None])}), schema, "t")
    assert exact.schema == schema and exact.column("x").null_count == 1
    with pytest.raises(BadInputFileError, match=re.escape("example value: 0.1")):
        conform_table(pa.table({"x": pa.array([0.5, 0.1])}), schema, "t")


def test_non_nullable_fields_refuse_nulls() -> None:
    schema = pa.schema([pa.field("x", pa.int64(), nullable=False)])
    with pytest.raises(BadInputFileError, match="column 'x' has 1 null"):
        conform_table(pa.table({"x": pa.array([1, None])}), schema, "t")


def test_byte_arrays_in_a_text_column_are_read_as_text_unvalidated():
    """Parquet BYTE_ARRAY without the UTF-8 annotation: read as text; UTF-8 is judged per row later."""
    table = _good(record_id=pa.array([b"a", b"\xff"], pa.binary()))
    out = conform_table(table, SCHEMA, "f.parquet")
    assert out.schema == SCHEMA
    assert out.column("record_id").cast(pa.binary()).to_pylist() == [b"a", b"\xff"]
    large = conform_table(_good(record_id=pa.array([b"a", b"b"], pa.large_binary())), SCHEMA, "f.parquet")
    assert large.column("record_id").to_pylist() == ["a", "b"]
