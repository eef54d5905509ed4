"""Dagster glue of the platform: the `BatchScoring` component and what it builds."""

from batch_inference.components.batch_scoring import BatchScoring

__all__ = ["BatchScoring"]
