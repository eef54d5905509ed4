"""Where the serving views script lives, as a Dagster resource."""

from pathlib import Path

import dagster as dg


class WarehouseResource(dg.ConfigurableResource):
    """Path of `warehouse.sql`, the DuckDB views over the lake that readers open (no database file)."""

    views_sql: str = ""  # empty: no views file (a lake on S3, read as an object-store table)

    @property
    def views_path(self) -> Path | None:
        return Path(self.views_sql) if self.views_sql else None
