"""What operators see beyond the UI: prices for cost metadata, the Pushgateway, progress cadence."""

import dagster as dg


class ObservabilityResource(dg.ConfigurableResource):
    """Device prices (USD per hour) for `cost_per_million_rows`; Pushgateway URL ("" = off)."""

    pushgateway_url: str = ""
    cpu_hourly_usd: float = 0.10
    gpu_hourly_usd: float = 3.00
    progress_interval_s: float = 10.0

    def hourly_price(self, device: str) -> float:
        return self.gpu_hourly_usd if device.startswith("cuda") else self.cpu_hourly_usd
