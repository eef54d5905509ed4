"""The Parquet lake: `<root>/<asset>/date=YYYY-MM-DD/part-0.parquet`, on local disk or S3.

Each partition is one Parquet file that appears atomically: locally it is written under a
temporary name in the same folder and renamed into place; on S3 the object only becomes
visible when its (multipart) upload completes. A reader never sees half a partition and a
rerun replaces, never appends.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from batch_inference.validation import validate_identifier, validate_partition_key

PART_NAME = "part-0.parquet"
# Row groups of 64k rows keep a streaming reader's memory small whatever the partition size.
ROW_GROUP_ROWS = 65_536
TMP_SUFFIX = ".tmp"


class PartitionMissingError(FileNotFoundError):
    """The asked-for partition has never been committed."""


def filesystem_for(uri: str) -> tuple[pafs.FileSystem, str]:
    """Return a pyarrow filesystem and the path inside it for a local path or `s3://` URI."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        kwargs: dict = {"region": region}
        if endpoint:
            kwargs["endpoint_override"] = endpoint
            kwargs["scheme"] = urlparse(endpoint).scheme or "https"
        return pafs.S3FileSystem(**kwargs), f"{parsed.netloc}{parsed.path}".rstrip("/")
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"unsupported lake URI {uri!r}: use a local path or s3://bucket/prefix")
    path = parsed.path if parsed.scheme == "file" else uri
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


@dataclass
class Lake:
    """Partitioned Parquet storage rooted at a local path or an S3 prefix."""

    uri: str

    def __post_init__(self) -> None:
        self.fs, self.root = filesystem_for(self.uri)
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)

    def partition_dir(self, asset: str, date: str) -> str:
        """The folder of one partition, after validating both names."""
        return f"{self.root}/{validate_identifier(asset)}/date={validate_partition_key(date)}"

    def partition_file(self, asset: str, date: str, part: str = PART_NAME) -> str:
        return f"{self.partition_dir(asset, date)}/{part}"

    def uri_of(self, path: str) -> str:
        """A user-facing URI for a path inside this lake's filesystem."""
        return path if self.is_local else f"s3://{path}"

    def exists(self, asset: str, date: str, part: str = PART_NAME) -> bool:
        info = self.fs.get_file_info(self.partition_file(asset, date, part))
        return info.type == pafs.FileType.File

    def dates(self, asset: str) -> list[str]:
        """Dates of the committed partitions of `asset`, sorted."""
        base = f"{self.root}/{validate_identifier(asset)}"
        infos = self.fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        found = []
        for info in infos:
            name = info.base_name
            if info.type == pafs.FileType.Directory and name.startswith("date="):
                date = name.removeprefix("date=")
                if self.exists(asset, date):
                    found.append(date)
        return sorted(found)

    def parquet_file(self, asset: str, date: str, part: str = PART_NAME) -> pq.ParquetFile:
        """Open a committed partition for streaming reads."""
        path = self.partition_file(asset, date, part)
        try:
            # Buffered page-by-page reads: memory follows the batch size, not the row-group size.
            return pq.ParquetFile(self.fs.open_input_file(path), pre_buffer=False, buffer_size=1 << 20)
        except FileNotFoundError:
            raise PartitionMissingError(
                f"no {asset} partition for {date} at {self.uri_of(path)}"
            ) from None

    def read(self, asset: str, date: str, columns: list[str] | None = None,
             part: str = PART_NAME) -> pa.Table:
        return self.parquet_file(asset, date, part).read(columns=columns)

    @contextlib.contextmanager
    def writer(self, asset: str, date: str, schema: pa.Schema,
               part: str = PART_NAME) -> Iterator[pq.ParquetWriter]:
        """Stream a partition into place; it is committed only if the block exits cleanly.

        Locally the file is written beside its final name and renamed; for S3 it is written to
        a local temporary file and uploaded in one piece once complete.
        """
        final = self.partition_file(asset, date, part)
        if self.is_local:
            self.fs.create_dir(self.partition_dir(asset, date), recursive=True)
            staging = f"{final}.{uuid.uuid4().hex}{TMP_SUFFIX}"
        else:
            fd, staging = tempfile.mkstemp(suffix=".parquet" + TMP_SUFFIX)
            os.close(fd)
        writer = pq.ParquetWriter(staging, schema, compression="zstd")
        try:
            yield writer
            writer.close()
            if self.is_local:
                os.replace(staging, final)
            else:
                pafs.copy_files(staging, final, source_filesystem=pafs.LocalFileSystem(),
                                destination_filesystem=self.fs)
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            with contextlib.suppress(FileNotFoundError):
                os.remove(staging)

    def write(self, asset: str, date: str, table: pa.Table, part: str = PART_NAME) -> str:
        """Write a whole table as the partition; returns the committed URI."""
        with self.writer(asset, date, table.schema, part) as writer:
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        return self.uri_of(self.partition_file(asset, date, part))

    def delete(self, asset: str, date: str, part: str = PART_NAME) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.partition_file(asset, date, part))
