"""Lake and landing storage as a Dagster resource (local path or s3:// URI)."""

import dagster as dg
import pyarrow.fs as pafs

from batch_inference.lake import Lake, filesystem_for


class LakeResource(dg.ConfigurableResource):
    """Where the Parquet lake and the landing area live."""

    lake_uri: str
    landing_uri: str

    def lake(self) -> Lake:
        return Lake(self.lake_uri)

    def landing(self) -> tuple[pafs.FileSystem, str]:
        """The landing area's filesystem and root path."""
        return filesystem_for(self.landing_uri)

    def landing_path(self, entity: str, date: str) -> str:
        """The landing file of one entity and day, e.g. `transactions_2026-11-20.parquet`."""
        _, root = self.landing()
        return f"{root}/{entity}_{date}.parquet"
