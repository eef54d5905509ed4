"""What operators see beyond the UI: prices for cost metadata, the Pushgateway, progress cadence."""

import dagster as dg
from pydantic import Field

from batch_inference.observability import PushSettings, configure_pushes, flush_pushes


class ObservabilityResource(dg.ConfigurableResource):
    """Device prices (USD per hour) for `cost_per_million_rows`; Pushgateway URL ("" = off).

    Metric pushes are sent in the background and bounded by the `push_*` fields, applied when the
    resource is set up for a run (or step); teardown flushes what is queued, waiting at most
    `push_flush_s`. A Pushgateway that accepts connections but never answers costs a run at most
    `push_wait_s` (see `batch_inference.observability`).
    """

    pushgateway_url: str = ""
    cpu_hourly_usd: float = 0.10
    gpu_hourly_usd: float = 3.00
    progress_interval_s: float = 10.0
    push_timeout_s: float = Field(default=2.0, gt=0, description="Socket timeout of one Pushgateway request")
    push_wait_s: float = Field(default=0.2, ge=0, description="How long a push call waits for its delivery")
    push_flush_s: float = Field(default=0.5, ge=0, description="Bounded wait for queued pushes at teardown")
    push_queue_size: int = Field(default=64, ge=1, description="Pushes queued at most; more are dropped")

    def hourly_price(self, device: str) -> float:
        return self.gpu_hourly_usd if device.startswith("cuda") else self.cpu_hourly_usd

    @property
    def push_settings(self) -> PushSettings:
        return PushSettings(timeout_s=self.push_timeout_s, wait_s=self.push_wait_s, flush_s=self.push_flush_s,
                            queue_size=self.push_queue_size)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.pushgateway_url:
            configure_pushes(self.push_settings)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self.pushgateway_url:
            flush_pushes()  # at most push_flush_s; not at all while the gateway is not answering
