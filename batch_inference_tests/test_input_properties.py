"""Property-based tests (Hypothesis): no value in a landing file fails a day, for every pipeline.

The landing files are generated from each pipeline's own input schema (its `arrow_schema` and
`rules`, found through its defs.yaml): a valid day from the pipeline's generator, then arbitrary
values in arbitrary cells, drawn by column type: invalid UTF-8 bytes, lone surrogates, huge
strings, NaN and infinities, the extreme integers of the type, nulls, timestamps far outside the
file's day. Nothing here names a column: the schema gives them.

Properties: the day is ingested and scored, every landing row is scored or quarantined
(`landed = scored + quarantined`), a quarantined row carries a reason naming its column (or the
key or event time rule), a value of invalid UTF-8 is always quarantined under its column, and
the completeness check's verdict is the volume gate's.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batch_inference import serving
from batch_inference.components.pipeline import Pipeline
from batch_inference.ingest import read_landing_file, screen_rows
from batch_inference.lake import Lake
from batch_inference.pipelines import discover, write_landing_file
from batch_inference.quality.completeness import DEFAULT_MAX_QUARANTINE_SHARE
from batch_inference_tests.conftest import project_defs

DAY = "2026-02-10"
ROWS = 40
MAX_CELLS = 3  # arbitrary cells per landing file: most rows stay valid, so the day has something to score
INVALID_UTF8 = [b"\xff", b"\xfe\xff", "\ud800".encode("utf-8", "surrogatepass"), b"caf\xc3", b"a\x80b"]
HUGE = 200_000
# Pipelines whose model the test session provides (conftest's small trained model); the others are
# built by their own `train_model` job.
MODEL_FIXTURES = {"card_fraud": "registry"}


@dataclass(frozen=True)
class InputSpec:
    """A pipeline's input contract, read from its defs.yaml."""

    info: Pipeline
    schema: pa.Schema
    rules: type
    key: str
    event_time: str | None
    tolerance: dt.timedelta

    @property
    def name(self) -> str:
        return self.info.name


@functools.cache
def input_specs() -> dict[str, InputSpec]:
    found = {}
    for name, info in sorted(discover().items()):
        inp = info.spec.input
        if info.upstream_key is not None or not inp.generator:
            continue  # an upstream-asset pipeline has no landing files
        found[name] = InputSpec(info, info.arrow_schema, info.rules, inp.key, inp.event_time,
                                dt.timedelta(hours=inp.event_time_tolerance_hours))
    return found


@functools.cache
def valid_day(pipeline: str, root: str) -> pa.Table:
    """A valid landing day of `pipeline` from its generator (the base the arbitrary values go into)."""
    path = write_landing_file(DAY, ROWS, Path(root) / pipeline, pipeline=pipeline)
    return pq.read_table(path)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def value_strategy(field: pa.Field, examples: list) -> st.SearchStrategy:
    """Arbitrary values for one column, by its Arrow type; `examples` are valid values of the column."""
    t = field.type
    choices: list[st.SearchStrategy] = [st.none()]
    present = [v for v in examples if v is not None]
    if present:
        choices.append(st.sampled_from(present))
    if _is_text(t):
        choices += [st.text(max_size=40), st.binary(max_size=16), st.sampled_from(INVALID_UTF8),
                    st.sampled_from(["", " ", "x" * HUGE, "\x00", "🙂" * 1000])]
    elif pa.types.is_integer(t):
        info = np.iinfo(t.to_pandas_dtype())
        choices += [st.integers(int(info.min), int(info.max)), st.sampled_from([int(info.min), int(info.max), 0, -1])]
    elif pa.types.is_floating(t):
        choices += [st.floats(allow_nan=True, allow_infinity=True, width=t.bit_width),
                    st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.0, 1e308, -1e308])]
    elif pa.types.is_boolean(t):
        choices.append(st.booleans())
    elif pa.types.is_timestamp(t):
        per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[t.unit]
        start = int(dt.datetime.fromisoformat(f"{DAY}T00:00:00+00:00").timestamp()) * per_second
        limit = 2**62
        choices += [st.integers(start - 3 * 86_400 * per_second, start + 4 * 86_400 * per_second),
                    st.integers(-limit, limit), st.sampled_from([-limit, limit, 0])]
    return st.one_of(*choices)


def landing_days(spec: InputSpec, base: pa.Table) -> st.SearchStrategy:
    """Strategy: the valid day `base` with up to MAX_CELLS cells set to arbitrary values."""
    columns = [f.name for f in spec.schema]

    @st.composite
    def build(draw) -> tuple[pa.Table, dict[int, dict[str, object]]]:
        cells: dict[int, dict[str, object]] = {}
        for _ in range(draw(st.integers(1, MAX_CELLS))):
            row, column = draw(st.integers(0, base.num_rows - 1)), draw(st.sampled_from(columns))
            field = spec.schema.field(column)
            cells.setdefault(row, {})[column] = draw(value_strategy(field, raw_values(base.column(column))))
        return with_cells(base, spec.schema, cells), cells

    return build()


def raw_values(column: pa.ChunkedArray) -> list:
    """A column's values as cells are drawn: text as bytes, timestamps as integers of their unit."""
    if _is_text(column.type):
        return column.cast(pa.binary()).to_pylist()
    if pa.types.is_timestamp(column.type):
        return column.cast(pa.int64()).to_pylist()
    return column.to_pylist()


def with_cells(base: pa.Table, schema: pa.Schema, cells: dict[int, dict[str, object]]) -> pa.Table:
    """`base` with the given cells replaced; text goes in as raw bytes (invalid UTF-8 included)."""
    table = base
    for column in {c for row in cells.values() for c in row}:
        field = schema.field(column)
        index = table.schema.get_field_index(column)
        values = raw_values(table.column(column))
        for row, changes in cells.items():
            if column in changes:
                value = changes[column]
                values[row] = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        if _is_text(field.type):
            array = pa.array(values, pa.binary()).view(field.type)
        elif pa.types.is_timestamp(field.type):
            array = pa.array(values, pa.int64()).view(field.type)
        else:
            array = pa.array(values, field.type)
        table = table.set_column(index, field, array)
    return table


def invalid_text_cells(cells: dict[int, dict[str, object]]) -> dict[int, set[str]]:
    """Row -> columns whose new value is not valid UTF-8."""
    def invalid(value: object) -> bool:
        if isinstance(value, str):
            value = value.encode("utf-8", "surrogatepass")
        if not isinstance(value, bytes):
            return False
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False

    return {row: {c for c, v in changes.items() if invalid(v)} for row, changes in cells.items()
            if any(invalid(v) for v in changes.values())}


def assert_reasons_name_columns(spec: InputSpec, reasons: list[str]) -> None:
    names = [f.name for f in spec.schema]
    for reason in reasons:
        assert reason and any(reason.startswith(f"{n}: ") or reason.startswith(f"{n} ") or f" {n}" in reason
                              for n in names), reason


def assert_invalid_text_quarantined(table: pa.Table, spec: InputSpec, quarantined: pa.Table,
                                    cells: dict[int, dict[str, object]]) -> None:
    """Each row given invalid UTF-8 is quarantined, under one of its invalid columns."""
    ids = table.column(spec.key).cast(pa.binary()).to_pylist()
    by_reason = {}
    for record_id, reason in zip(quarantined.column("record_id").to_pylist(),
                                 quarantined.column("reason").to_pylist(), strict=True):
        by_reason.setdefault(record_id, []).append(reason)
    for row, columns in invalid_text_cells(cells).items():
        raw = ids[row]
        record_id = None if raw is None else raw.decode("utf-8", "backslashreplace")
        reasons = by_reason.get(record_id, [])
        assert any(r.startswith(f"{c}: invalid UTF-8") for r in reasons for c in columns), (row, columns, reasons)


# -- library level: many examples, read -> screen -> features (DuckDB) ---------------------------

@pytest.mark.parametrize("pipeline", sorted(input_specs()))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_any_landing_file_is_screened_and_featurised(pipeline, data, tmp_path_factory):
    spec = input_specs()[pipeline]
    table, cells = data.draw(landing_days(spec, valid_day(pipeline, str(_base_root(tmp_path_factory)))))
    path = tmp_path_factory.mktemp("landing") / f"{spec.info.spec.input.landing_entity}_{DAY}.parquet"
    pq.write_table(table, path)
    read = read_landing_file(pafs.LocalFileSystem(), str(path), spec.schema)
    valid, quarantined = screen_rows(read, spec.rules, spec.info.spec.input.landing_entity, key=spec.key,
                                     event_time=spec.event_time, date=DAY, tolerance=spec.tolerance)
    assert valid.num_rows + quarantined.num_rows == table.num_rows
    valid.validate(full=True)  # nothing unvalidated goes on
    quarantined.validate(full=True)
    assert_reasons_name_columns(spec, quarantined.column("reason").to_pylist())
    assert_invalid_text_quarantined(table, spec, quarantined, cells)
    if spec.rules is not None:
        spec.rules.validate(valid.to_pandas(), lazy=True)  # the input schema check passes on what is kept
    assert spec.info.feature_fn(valid).num_rows == valid.num_rows
    con = duckdb.connect()  # the quarantine is queryable: no invalid UTF-8 written
    try:
        assert con.execute("SELECT count(*), count(DISTINCT reason) FROM quarantined").fetchone()[0] == \
            quarantined.num_rows
    finally:
        con.close()


def _base_root(factory) -> Path:
    root = factory.getbasetemp() / "valid_days"
    root.mkdir(exist_ok=True)
    return root


# -- end to end: the real ingest -> features -> score path through Dagster, few examples -----------

def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def every_text_column_invalid(spec: InputSpec, base: pa.Table) -> tuple[pa.Table, dict]:
    """An explicit example: invalid UTF-8 in each text column (the key included), one row each."""
    texts = [f.name for f in spec.schema if _is_text(f.type)]
    cells = {row: {column: INVALID_UTF8[row % len(INVALID_UTF8)]} for row, column in enumerate(texts)}
    return with_cells(base, spec.schema, cells), cells


@pytest.mark.parametrize(("pipeline", "examples"), [(p, 3 if p in MODEL_FIXTURES else 1)
                                                    for p in sorted(input_specs())])
def test_any_landing_day_is_ingested_and_scored(pipeline, examples, home, dagster_instance, request,
                                                tmp_path_factory):
    spec = input_specs()[pipeline]
    if pipeline in MODEL_FIXTURES:
        request.getfixturevalue(MODEL_FIXTURES[pipeline])
    defs = project_defs(home)
    lake = Lake(f"{home.lake_uri}/{pipeline}")
    landing = Path(home.landing_uri) / f"{spec.info.spec.input.landing_entity}_{DAY}.parquet"
    landing.parent.mkdir(parents=True, exist_ok=True)
    inp, pred = spec.info.spec.input.asset, spec.info.spec.scoring.asset
    trained = pipeline in MODEL_FIXTURES

    base = valid_day(pipeline, str(_base_root(tmp_path_factory)))

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(day=landing_days(spec, base))
    @example(day=every_text_column_invalid(spec, base))
    def run_day(day):
        nonlocal trained
        table, cells = day
        pq.write_table(table, landing)
        ingest = defs.resolve_job_def(f"{pipeline}_ingest_day").execute_in_process(
            partition_key=DAY, instance=dagster_instance, raise_on_error=False)
        assert ingest.success, [e.step_failure_data.error.to_string() for e in ingest.all_events
                                if e.is_step_failure]
        assert _checks(ingest)[f"{inp}_schema"].passed  # what was kept passes the input schema
        if not trained:
            assert defs.resolve_job_def(f"{pipeline}_train_model").execute_in_process(
                instance=dagster_instance).success
            trained = True
        score = defs.resolve_job_def(f"{pipeline}_score_day").execute_in_process(
            partition_key=DAY, instance=dagster_instance, raise_on_error=False)
        failures = [e.step_failure_data.error.to_string() for e in score.all_events if e.is_step_failure]
        assert lake.exists(pred, DAY), failures  # the day was scored
        scored = lake.read(pred, DAY, ["record_id"]).num_rows
        quarantined = pa.concat_tables(lake.read("quarantine", DAY, part=part)
                                       for part in (f"part-{inp}.parquet", f"part-{pred}.parquet")
                                       if lake.exists("quarantine", DAY, part))
        assert scored + quarantined.num_rows == table.num_rows  # landed = scored + quarantined
        assert_reasons_name_columns(spec, quarantined.column("reason").to_pylist())
        assert_invalid_text_quarantined(table, spec, quarantined, cells)
        checks = _checks(score)
        completeness = checks[f"{pred}_completeness"]
        share = quarantined.num_rows / table.num_rows
        assert completeness.passed == (scored > 0 and share <= DEFAULT_MAX_QUARANTINE_SHARE), completeness.metadata
        assert checks[f"{pred}_model_version"].passed
        if not completeness.passed:
            assert "F2" in completeness.metadata["runbook"].value
            assert not lake.exists(spec.info.spec.serving.asset, DAY)  # blocked
        con = serving.connect(home.lake_uri)  # every view over the lake still reads, for all days
        try:
            for asset in (inp, spec.info.spec.features.asset, pred, "quarantine"):
                con.execute(f"SELECT * FROM {pipeline}.{asset}").fetchall()  # noqa: S608 - test names
        finally:
            con.close()

    run_day()


def test_a_file_of_another_day_is_blocked_naming_the_out_of_day_rows(home, dagster_instance, registry):
    """Every row of the file belongs to the next day: all quarantined, and the day is not published."""
    pipeline = next(iter(MODEL_FIXTURES))  # a pipeline with a ready model
    spec = input_specs()[pipeline]
    landing = Path(home.landing_uri)
    path = write_landing_file("2026-02-12", ROWS, landing, pipeline=pipeline)  # rows of the 12th ...
    path.rename(landing / f"{spec.info.spec.input.landing_entity}_{DAY}.parquet")  # ... named the 10th
    defs = project_defs(home)
    assert defs.resolve_job_def(f"{pipeline}_ingest_day").execute_in_process(partition_key=DAY,
                                                                             instance=dagster_instance).success
    score = defs.resolve_job_def(f"{pipeline}_score_day").execute_in_process(
        partition_key=DAY, instance=dagster_instance, raise_on_error=False)
    pred = spec.info.spec.scoring.asset
    completeness = _checks(score)[f"{pred}_completeness"]
    assert not completeness.passed and completeness.severity == dg.AssetCheckSeverity.ERROR
    meta = completeness.metadata
    assert meta["runbook"].value == "docs/runbooks/F2.md"
    assert meta["out_of_day_rows"].value == ROWS and meta["scored_rows"].value == 0
    assert meta["volume"].value.startswith("nothing scored from a non-empty file")
    assert f"{ROWS} of them outside the file's day" in meta["volume"].value
    assert not Lake(f"{home.lake_uri}/{pipeline}").exists(spec.info.spec.serving.asset, DAY)
