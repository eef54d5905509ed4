"""One pipeline model: the CLI's view of the YAML is the component's, settings are read on call,
and one runbook table serves every check."""

from pathlib import Path

import pytest
import yaml

from batch_inference.failures import runbook_for_check
from batch_inference.pipelines import PipelineYamlError, discover
from batch_inference.settings import load_settings

DEFS = Path(__file__).resolve().parents[1] / "batch_inference" / "defs"


def test_tools_and_component_share_the_yaml_model_and_its_defaults():
    pipelines = discover()
    card, tickets = pipelines["card_fraud"], pipelines["support_tickets"]
    assert card.spec.input.landing_entity == "transactions" and card.spec.backfill.partitions_per_run == 30
    assert card.row_key == "record_id"
    assert tickets.spec.input.key == "ticket_id" and tickets.row_key == "record_id"  # features.key renames it
    assert tickets.spec.demo_rows_per_day == 300 and card.spec.demo_rows_per_day is None


def _write(folder: Path, attributes: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "defs.yaml").write_text(yaml.safe_dump({"type": "batch_inference.components.BatchScoring",
                                                      "attributes": attributes}))


def test_a_bad_or_duplicate_yaml_names_its_file(tmp_path):
    attributes = yaml.safe_load((DEFS / "card_fraud" / "defs.yaml").read_text())["attributes"]
    del attributes["input"]["landing_entity"]
    _write(tmp_path / "a", attributes)
    assert discover(tmp_path)["card_fraud"].spec.input.landing_entity == "transactions"  # the one default
    _write(tmp_path / "b", attributes)
    with pytest.raises(PipelineYamlError, match=r"b/defs.yaml: pipeline name 'card_fraud' is also declared in .*a/"):
        discover(tmp_path)
    (tmp_path / "b" / "defs.yaml").unlink()
    _write(tmp_path / "c", {**attributes, "name": "other", "scoring": {"adapter": "x:Y"}})
    with pytest.raises(PipelineYamlError, match=r"c/defs.yaml: invalid BatchScoring attributes(.|\n)*scoring.head"):
        discover(tmp_path)


def test_settings_are_read_when_asked():
    settings = load_settings({"BATCH_INFERENCE_PARTITIONS_PER_RUN": "5", "BATCH_INFERENCE_SENSORS": "stopped",
                              "DEMO_ROWS_CARD_FRAUD": "10", "DEMO_ROWS_PER_DAY": "20", "AWS_REGION": "eu-west-1"})
    assert settings.partitions_per_run == 5 and settings.sensors_stopped and settings.aws_region == "eu-west-1"
    assert settings.demo_rows_by_pipeline == {"card_fraud": 10} and settings.demo_rows_per_day == 20
    assert load_settings({}).partitions_per_run is None and load_settings({}).environment == "local"
    with pytest.raises(ValueError, match="BATCH_INFERENCE_ENV must be 'local' or 'prod', not 'staging'"):
        load_settings({"BATCH_INFERENCE_ENV": "staging"})
    with pytest.raises(ValueError, match="BATCH_INFERENCE_PARTITIONS_PER_RUN must be an integer, not 'many'"):
        load_settings({"BATCH_INFERENCE_PARTITIONS_PER_RUN": "many"})


def test_one_runbook_table_for_checks():
    assert runbook_for_check("predictions_drift") == "docs/runbooks/F5.md"
    assert runbook_for_check("embeddings_model_version") == "docs/runbooks/F4.md"
    assert runbook_for_check("transactions_schema") == runbook_for_check("predictions_completeness") \
        == "docs/runbooks/F2.md"
    assert all((DEFS.parents[1] / runbook_for_check(f"x_{k}")).exists()
               for k in ("schema", "completeness", "drift", "model_version"))
