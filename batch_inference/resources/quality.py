"""Run-time overrides of the quality gates as a Dagster resource (each pipeline's YAML sets its own)."""

import dagster as dg


class QualityResource(dg.ConfigurableResource):
    """Unset values take the pipeline's YAML thresholds; set one to override it for every pipeline."""

    psi_warn: float | None = None
    psi_alert: float | None = None
    ks_warn: float | None = None
    ks_alert: float | None = None
    drift_features: int | None = None  # the most important inputs checked besides the outputs
