"""Mistakes in a pipeline's YAML fail when definitions load, before any run, naming file, line and field.

Each test writes a real defs folder (a copy of the card-fraud YAML with one mistake) into Dagster's
components sandbox and loads it the way the code location does.
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import pytest
from dagster.components.testing import create_defs_folder_sandbox

from batch_inference.components.load_validation import feature_sql_schema
from batch_inference.defs.card_fraud.vocabulary import TRANSACTION_SCHEMA
from batch_inference.pipelines import discover
from batch_inference.validation import InvalidNameError, validate_identifier

CARD_FRAUD = Path(__file__).resolve().parents[1] / "batch_inference" / "defs" / "card_fraud"
YAML = (CARD_FRAUD / "defs.yaml").read_text()


def load_error(folders: dict[str, str], sql: bool = True) -> tuple[str, Path]:
    """Load a sandbox defs folder with one pipeline per entry; return the full error text."""
    with create_defs_folder_sandbox() as sandbox:
        for folder, text in folders.items():
            path = sandbox.defs_folder_path / folder
            path.mkdir(parents=True)
            (path / "defs.yaml").write_text(text)
            if sql:
                (path / "features.sql").write_text((CARD_FRAUD / "features.sql").read_text())
        with pytest.raises(Exception) as info, sandbox.build_all_defs():
            pass
        return "".join(traceback.format_exception(info.value)), sandbox.defs_folder_path


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def with_line(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def test_every_example_pipeline_passes_the_load_checks():
    for p in discover().values():
        p.validate()


def test_a_model_feature_the_sql_does_not_select_fails_at_load_with_file_line_and_field():
    text = with_line(YAML, "      max_rows: 400000", "      max_rows: 400000\n      features: [log_amount, amount_usd]")
    error, root = load_error({"fraud2": text})
    where = f"{root / 'fraud2' / 'defs.yaml'}:{line_of(text, 'features: [log_amount')}"
    assert re.search(rf"{re.escape(where)}: attributes\.registered_model\.params\.features: column\(s\) "
                     r"'amount_usd' not selected by features\.sql \(it selects: record_id, log_amount", error), error


def test_an_adapter_column_the_sql_does_not_select_fails_at_load():
    text = with_line(YAML, "    adapter: batch_inference.plugins.tabular:FloatMatrix",
                     "    adapter: batch_inference.plugins.tabular:FloatMatrix\n"
                     "    adapter_params:\n      columns: [log_amount, hour_of_week]")
    error, root = load_error({"fraud2": text})
    where = f"{root / 'fraud2' / 'defs.yaml'}:{line_of(text, 'columns: [log_amount')}"
    assert f"{where}: attributes.scoring.adapter_params.columns: column(s) 'hour_of_week' not selected" in error


def test_a_feature_sql_that_breaks_the_pandera_schema_fails_at_load():
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.defs_folder_path / "fraud2"
        path.mkdir(parents=True)
        (path / "defs.yaml").write_text(YAML)
        sql = (CARD_FRAUD / "features.sql").read_text().replace("CAST(ln(1 + t.amount) AS FLOAT) AS log_amount",
                                                              "ln(1 + t.amount) AS log_amount")
        (path / "features.sql").write_text(sql)
        with pytest.raises(Exception) as info, sandbox.build_all_defs():
            pass
    error = "".join(traceback.format_exception(info.value))
    assert f"defs.yaml:{line_of(YAML, 'pandera_schema: batch_inference.defs.card_fraud.schemas:FeaturesSchema')}" \
           ": attributes.features.pandera_schema: the output of features.sql does not fit FeaturesSchema" in error
    assert "log_amount" in error and "float32" in error


def test_an_invalid_name_says_which_field_and_which_characters_are_allowed():
    text = with_line(YAML, "  name: card_fraud", "  name: card-fraud")
    error, root = load_error({"fraud2": text})
    assert f"{root / 'fraud2' / 'defs.yaml'}:{line_of(text, 'name: card-fraud')}: attributes.name:" in error
    assert "invalid name 'card-fraud' (not allowed: '-')" in error and "digits 0-9 and underscore" in error
    text = with_line(YAML, "    asset: transactions", "    asset: trans.actions")
    error, root = load_error({"fraud2": text})
    assert f"attributes.input.InputSpec.asset at {root / 'fraud2' / 'defs.yaml'}:{line_of(text, '  input:')}" \
        in error and "invalid name 'trans.actions' (not allowed: '.')" in error
    text = with_line(YAML, "    key: record_id", '    key: "record id"')  # a key column goes into SQL too
    error, root = load_error({"fraud2": text})
    assert f"attributes.input.InputSpec.key at {root / 'fraud2' / 'defs.yaml'}:{line_of(text, '  input:')}" \
        in error and "invalid name 'record id' (not allowed: ' ')" in error
    with pytest.raises(InvalidNameError, match=r"invalid features\.asset 'a b' \(not allowed: ' '\); allowed:"):
        validate_identifier("a b", "features.asset")


def test_the_same_pipeline_name_in_two_files_names_both_files_before_any_run():
    error, root = load_error({"one": YAML, "two": YAML})
    line = line_of(YAML, "  name: card_fraud")
    assert f"is also declared in {root / 'two' / 'defs.yaml'}:{line}" in error \
        or f"is also declared in {root / 'one' / 'defs.yaml'}:{line}" in error
    assert "Duplicate asset key" not in error


def test_a_missing_sql_file_names_the_field():
    error, root = load_error({"fraud2": YAML}, sql=False)
    where = f"{root / 'fraud2' / 'defs.yaml'}:{line_of(YAML, 'sql: features.sql')}"
    assert f"{where}: attributes.features.sql: SQL file not found: {root / 'fraud2' / 'features.sql'}" in error


def test_a_bad_plugin_path_names_its_field():
    text = with_line(YAML, "    head: batch_inference.plugins.heads:Probability",
                     "    head: batch_inference.plugins.heads:Probabilty")
    error, root = load_error({"fraud2": text})
    where = f"{root / 'fraud2' / 'defs.yaml'}:{line_of(text, 'heads:Probabilty')}"
    assert f"{where}: attributes.scoring.head: PluginError" in error


def test_the_feature_sql_schema_comes_from_an_empty_input_table():
    schema = feature_sql_schema((CARD_FRAUD / "features.sql").read_text(), TRANSACTION_SCHEMA)
    assert schema.names[:2] == ["record_id", "log_amount"] and str(schema.field("log_amount").type) == "float"


def test_batch_inference_check_reports_the_same_problems_without_dagster(tmp_path: Path):
    from batch_inference.pipelines import check_pipelines

    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "defs.yaml").write_text(YAML)
    (tmp_path / "one" / "features.sql").write_text((CARD_FRAUD / "features.sql").read_text())
    bad = with_line(YAML, "  name: card_fraud", "  name: card fraud")
    (tmp_path / "three").mkdir()
    (tmp_path / "three" / "defs.yaml").write_text("# leading comment\n---\n" + bad)
    errors = "\n".join(check_pipelines(tmp_path))
    name_line = line_of(YAML, "  name: card_fraud")
    assert f"{tmp_path / 'one' / 'defs.yaml'}:{name_line}: attributes.name: pipeline name 'card_fraud' is also " \
           f"declared in {tmp_path / 'two' / 'defs.yaml'}:{name_line}" in errors
    assert f"{tmp_path / 'two' / 'defs.yaml'}:{line_of(YAML, 'sql: features.sql')}: attributes.features.sql: " \
           "SQL file not found" in errors
    assert f"{tmp_path / 'three' / 'defs.yaml'}:{name_line + 2}: attributes.name: Value error, invalid name " \
           "'card fraud' (not allowed: ' ')" in errors


def test_batch_inference_check_passes_on_the_project():
    import subprocess
    import sys

    proc = subprocess.run([str(Path(sys.executable).parent / "batch-inference"), "check"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pipeline(s) checked: no problems" in proc.stdout


def test_drift_settings_for_a_column_that_does_not_exist_fail_at_load():
    text = with_line(YAML, "      card_not_present: {critical: true}",
                     "      card_not_present: {critical: true}\n      hour_of_week: {exclude: true}")
    error, root = load_error({"fraud2": text})
    where = f"{root / 'fraud2' / 'defs.yaml'}:{line_of(text, 'hour_of_week:')}"
    assert f"{where}: attributes.quality.features.hour_of_week: drift settings for 'hour_of_week', which is " \
           "neither a column of features.sql" in error
