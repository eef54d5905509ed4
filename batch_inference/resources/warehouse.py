"""The DuckDB warehouse file as a Dagster resource."""

from pathlib import Path

import dagster as dg


class WarehouseResource(dg.ConfigurableResource):
    """Path of the DuckDB database that holds views over the lake and the serving table."""

    path: str

    @property
    def db_path(self) -> Path:
        return Path(self.path)
