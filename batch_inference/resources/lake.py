"""Lake and landing storage as a Dagster resource (local path or s3:// URI), shared by pipelines."""

import dagster as dg
import pyarrow.fs as pafs

from batch_inference.lake import Lake, filesystem_for
from batch_inference.validation import validate_identifier, validate_partition_key


class LakeResource(dg.ConfigurableResource):
    """Where the Parquet lake and the landing area live; each pipeline has its own lake folder."""

    lake_uri: str
    landing_uri: str

    def lake(self, pipeline: str) -> Lake:
        """The pipeline's part of the lake: `<lake_uri>/<pipeline>/<asset>/date=D/`."""
        return Lake(f"{self.lake_uri.rstrip('/')}/{validate_identifier(pipeline)}")

    def landing(self) -> tuple[pafs.FileSystem, str]:
        """The landing area's filesystem and root path."""
        return filesystem_for(self.landing_uri)

    def landing_path(self, entity: str, date: str) -> str:
        """The landing file of one entity and day, e.g. `<entity>_2026-11-20.parquet`."""
        _, root = self.landing()
        return f"{root}/{validate_identifier(entity)}_{validate_partition_key(date)}.parquet"
