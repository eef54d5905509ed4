"""Where the serving views script lives, as a Dagster resource."""

from pathlib import Path

import dagster as dg


class WarehouseResource(dg.ConfigurableResource):
    """Path of `warehouse.sql`, the DuckDB views over the lake that readers open (no database file)."""

    views_sql: str

    @property
    def views_path(self) -> Path:
        return Path(self.views_sql)
