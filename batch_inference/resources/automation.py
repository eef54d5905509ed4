"""Settings of the sensors as a Dagster resource."""

import dagster as dg


class AutomationResource(dg.ConfigurableResource):
    """How far back a champion change re-scores, and whether a canary partition goes first."""

    rescore_window_days: int = 30
    canary: bool = True
