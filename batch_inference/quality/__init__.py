"""Quality gates as a plain library: schemas, completeness and drift (no Dagster import)."""
