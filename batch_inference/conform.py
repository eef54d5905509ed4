"""Strict conformance of an input table to a schema: lossless conversions only.

Accepted (every value survives unchanged): another column order, extra columns (dropped),
dictionary-encoded and large/view strings, binary values in a text column (Parquet byte arrays
written without the UTF-8 annotation; each value's UTF-8 is judged per row by the row screen, so a
bad value quarantines its row, not the file), integers of any width or signedness whose values fit
the target, integers and floats into a float column when every value round-trips exactly
(float32 -> float64 always does), timestamps of another unit or time zone (tz-aware values are
instants; only a unit change that would truncate is refused), and all-null columns.

Refused (`BadInputFileError`, naming the file, the column, the type found, the type expected
and an example value): numbers stored as text, floats in an integer column (3.0 included: the
writer's type is wrong), integers in a boolean column (is 2 true?), integers or text in a
timestamp column (epoch seconds or milliseconds? which format?), *naive* timestamps into a
tz-aware column (local time or UTC? ambiguous, so refused rather than guessed), tz-aware into a
naive column, dates in a timestamp column, integers out of the target's range, and any value
that does not round-trip. Missing columns are refused with the columns found.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class BadInputFileError(ValueError):
    """An input file that cannot be ingested at all; nothing is written for it."""


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


TEXT_OF_BINARY = {pa.binary(): pa.string(), pa.large_binary(): pa.large_string(), pa.binary_view(): pa.string_view()}


def binary_as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Byte arrays reinterpreted as text, without validating: `ingest.screen_rows` judges every value's
    UTF-8 per row (a cast would fail the whole file on one bad value)."""
    text = TEXT_OF_BINARY[column.type]
    return pa.chunked_array([chunk.view(text) for chunk in column.chunks], text)


def _refusal(found: pa.DataType, expected: pa.DataType) -> str | None:
    """Why `found` cannot be converted to `expected` by type alone; None when it may be."""
    if found == expected or pa.types.is_null(found):
        return None
    numeric = pa.types.is_integer(found) or pa.types.is_floating(found)
    if _is_text(found) and not _is_text(expected):
        return "values stored as text"
    if pa.types.is_integer(expected):
        if pa.types.is_integer(found):
            return None
        if pa.types.is_floating(found):
            return "floating-point values in an integer column"
    elif pa.types.is_floating(expected):
        if numeric:
            return None
    elif pa.types.is_boolean(expected):
        if numeric:
            return "numbers in a boolean column (which values are true is ambiguous)"
    elif _is_text(expected):
        if _is_text(found):
            return None
    elif pa.types.is_timestamp(expected):
        if pa.types.is_timestamp(found):
            if found.tz is None and expected.tz is not None:
                return "naive timestamps (no time zone) in a time-zone-aware column are ambiguous"
            if found.tz is not None and expected.tz is None:
                return "time-zone-aware timestamps in a naive timestamp column"
            return None
        if numeric:
            return "numbers in a timestamp column (epoch in which unit?) are ambiguous"
        if pa.types.is_date(found):
            return "dates (no time of day or time zone) in a timestamp column"
    return "no lossless conversion"


def _first_value(column: pa.ChunkedArray, mask: pa.ChunkedArray | None = None) -> object:
    """The first non-null value of `column` (where `mask` is true, if given), for messages."""
    candidates = column.filter(mask) if mask is not None else column
    candidates = candidates.drop_null()
    return candidates[0].as_py() if len(candidates) else None


def _out_of_range(column: pa.ChunkedArray, target: pa.DataType) -> np.ndarray | None:
    """Mask of integer values outside `target`'s range (None unless both are integer types)."""
    if not (pa.types.is_integer(column.type) and pa.types.is_integer(target)):
        return None
    values = pc.fill_null(column, 0).to_numpy()
    have, want = np.iinfo(values.dtype), np.iinfo(target.to_pandas_dtype())
    mask = np.zeros(len(values), dtype=bool)
    if have.min < want.min:  # only signed sources can go below; want.min is then >= int64 min
        mask |= values < want.min
    if have.max > want.max:
        mask |= values > values.dtype.type(want.max)
    return mask


def _cast_losslessly(column: pa.ChunkedArray, target: pa.DataType) -> tuple[pa.ChunkedArray, object]:
    """Cast (overflow and truncation checked), then check every value round-trips.

    Returns (cast column, None) or (original column, first value that would be lost).
    """
    try:
        cast = column.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        mask = _out_of_range(column, target)
        if mask is not None and mask.any():
            return column, _first_value(column, pa.chunked_array([mask]))
        try:
            cast = column.cast(target, safe=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return column, _first_value(column)
        bad = _mismatch(column, cast)
        return column, _first_value(column) if bad is None else _first_value(column, bad)
    bad = _mismatch(column, cast)
    return (cast, None) if bad is None else (column, _first_value(column, bad))


def _mismatch(column: pa.ChunkedArray, cast: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """Mask of values that do not survive the round trip through `cast`'s type (None: all do)."""
    back = cast.cast(column.type, safe=False)
    equal = pc.equal(back, column)
    same_null = pc.equal(pc.is_null(back), pc.is_null(column))
    ok = pc.and_(pc.fill_null(equal, True), same_null)
    if pa.types.is_floating(column.type):  # NaN != NaN, and NaN survives every float cast
        ok = pc.or_(ok, pc.and_(pc.fill_null(pc.is_nan(column), False), pc.fill_null(pc.is_nan(back), False)))
    return None if pc.all(ok).as_py() is not False else pc.invert(ok)


def conform_table(table: pa.Table, schema: pa.Schema, source: str) -> pa.Table:
    """`table` in `schema`'s column order and types, converting only without loss (see module)."""
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise BadInputFileError(
            f"{source} is missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(table.column_names) or 'no columns'})")
    columns = []
    for field in schema:
        column = table.column(field.name)
        found = column.type
        if pa.types.is_dictionary(found):
            column = column.cast(found.value_type)
        if column.type in TEXT_OF_BINARY and _is_text(field.type):
            column = binary_as_text(column)
        if pa.types.is_null(column.type):  # all null: nothing to lose; nulls are judged below
            column = pa.chunked_array([pa.nulls(len(column), field.type)], field.type)
        if column.type != field.type:
            why = _refusal(column.type, field.type)
            bad = _first_value(column) if why else None
            if why is None:
                column, bad = _cast_losslessly(column, field.type)
                if bad is not None or column.type != field.type:
                    why = "values that do not fit the expected type without loss"
            if why:
                raise BadInputFileError(
                    f"{source}: column {field.name!r} has type {found}, expected {field.type}: "
                    f"{why}; example value: {bad!r}")
        if column.null_count and not field.nullable:
            raise BadInputFileError(f"{source}: column {field.name!r} has {column.null_count} null(s) "
                                    f"but the schema does not allow nulls")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)
