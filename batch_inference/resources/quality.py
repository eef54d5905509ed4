"""Thresholds of the quality gates as a Dagster resource."""

import dagster as dg

from batch_inference.quality.drift import DriftThresholds


class QualityResource(dg.ConfigurableResource):
    """Drift thresholds (PSI bands 0.1/0.25 and KS effect sizes 0.1/0.2 by default)."""

    psi_warn: float = 0.1
    psi_alert: float = 0.25
    ks_warn: float = 0.1
    ks_alert: float = 0.2
    drift_features: int = 6  # the most important features checked besides the score

    def thresholds(self) -> DriftThresholds:
        return DriftThresholds(self.psi_warn, self.psi_alert, self.ks_warn, self.ks_alert)
