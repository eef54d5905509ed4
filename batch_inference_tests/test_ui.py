"""The UI story in a real browser: `dagster dev` over a scored instance, opened in headless Chromium."""

import os
import shutil
from pathlib import Path

import pytest

from batch_inference_tests.conftest import PIPELINE, job, project_defs, subprocess_env
from batch_inference_tests.dagster_dev import dagster_dev

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is installed by .ci/run"),
]
CHECKS = ("predictions_schema", "predictions_completeness", "predictions_drift", "predictions_model_version")
TEXT = "support_tickets"
REGRESSION = "store_demand"
TEXT_CHECKS = ("embeddings_schema", "embeddings_completeness", "embeddings_drift", "embeddings_model_version")


def _open(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    skip = page.get_by_text("Skip", exact=True)  # the first-visit community dialog
    try:
        skip.first.wait_for(timeout=5_000)
        skip.first.click()
    except Exception:  # noqa: BLE001 - the dialog is not always shown
        pass


def _shot(page, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / f"{name}.png"), full_page=False)


def test_asset_graph_partitions_checks_and_metadata_in_chromium(home, landed, registry, dagster_instance, tmp_path):
    from playwright.sync_api import sync_playwright

    from batch_inference.pipelines import write_landing_file

    defs = project_defs(home)
    for day in landed:
        assert defs.resolve_job_def(job("ingest_day")).execute_in_process(partition_key=day,
                                                                          instance=dagster_instance).success
        assert defs.resolve_job_def(job("score_day")).execute_in_process(partition_key=day,
                                                                         instance=dagster_instance).success
    # The second pipeline, the text embeddings: one day, so both groups and their checks show.
    write_landing_file(landed[-1], 150, Path(home.landing_uri), pipeline=TEXT)
    for name in ("ingest_day", "train_model", "score_day"):
        kwargs = {} if name == "train_model" else {"partition_key": landed[-1]}
        assert defs.resolve_job_def(f"{TEXT}_{name}").execute_in_process(instance=dagster_instance, **kwargs).success
    shots = Path(os.environ.get("BI_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    env = {**subprocess_env(home), "BATCH_INFERENCE_SENSORS": "stopped"}
    with dagster_dev(env, home.dagster_home, tmp_path / "dev.log") as port, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        base = f"http://127.0.0.1:{port}"

        _open(page, f"{base}/locations/batch_inference/asset-groups/{PIPELINE}")  # one group per pipeline
        for asset in ("transactions", "features", "predictions"):
            page.get_by_text(asset, exact=True).first.wait_for(timeout=90_000)
        page.get_by_text("4 / 4 Passed").first.wait_for(timeout=30_000)
        _shot(page, shots, "asset_graph")

        _open(page, f"{base}/assets/{PIPELINE}/predictions?view=partitions")
        page.get_by_text(f"Materialized ({len(landed)})").first.wait_for(timeout=60_000)
        page.get_by_text("Failed (0)").first.wait_for(timeout=10_000)
        _shot(page, shots, "predictions_partitions")

        _open(page, f"{base}/assets/{PIPELINE}/predictions?view=checks")
        for check in CHECKS:
            page.get_by_text(check, exact=True).first.wait_for(timeout=60_000)
        page.get_by_text("Succeeded").first.wait_for(timeout=30_000)
        assert page.get_by_text("Succeeded").count() >= len(CHECKS)
        _shot(page, shots, "predictions_checks")

        _open(page, f"{base}/assets/{PIPELINE}/predictions?view=events")
        for key in ("rows_per_second", "batch_latency_p99_ms", "cost_per_million_rows", "model_version",
                    "model_artifact_sha256"):
            page.get_by_text(key, exact=True).first.wait_for(timeout=60_000)
        _shot(page, shots, "predictions_metadata")

        _open(page, f"{base}/locations/batch_inference/asset-groups/{TEXT}")
        for asset in ("tickets", "features", "embeddings", "serving_embeddings"):
            page.get_by_text(asset, exact=True).first.wait_for(timeout=90_000)
        _shot(page, shots, "text_asset_graph")

        _open(page, f"{base}/assets/{TEXT}/embeddings?view=checks")
        for check in TEXT_CHECKS:
            page.get_by_text(check, exact=True).first.wait_for(timeout=60_000)
        assert page.get_by_text("Succeeded").count() >= len(TEXT_CHECKS)
        _shot(page, shots, "embeddings_checks")

        # The third pipeline, upstream-fed: its group shows the upstream asset feeding its input.
        _open(page, f"{base}/locations/batch_inference/asset-groups/{REGRESSION}")
        for asset in ("store_sales_raw", "sales", "features", "predictions"):
            page.get_by_text(asset, exact=True).first.wait_for(timeout=90_000)
        _shot(page, shots, "regression_asset_graph")
        browser.close()
    assert all((shots / f"{n}.png").stat().st_size > 10_000 for n in
               ("asset_graph", "predictions_partitions", "predictions_checks", "predictions_metadata",
                "text_asset_graph", "embeddings_checks", "regression_asset_graph"))
