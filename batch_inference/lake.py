"""The Parquet lake: `<root>/<asset>/date=YYYY-MM-DD/part-0.parquet`, on local disk or S3.

Each partition is one Parquet file that appears atomically: locally it is written under a
temporary name in the same folder and renamed into place; on S3 the object only becomes
visible when its (multipart) upload completes. A reader never sees half a partition and a
rerun replaces, never appends.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from batch_inference.settings import load_settings
from batch_inference.validation import InvalidNameError, validate_identifier, validate_partition_key

PART_NAME = "part-0.parquet"
# Row groups of 64k rows keep a streaming reader's memory small whatever the partition size.
ROW_GROUP_ROWS = 65_536
TMP_SUFFIX = ".tmp"
_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.parquet$")


def crash_point(name: str) -> None:
    """Fault injection for the crash tests: SIGKILL this process at a named point if asked.

    Set BATCH_INFERENCE_CRASH_AT=<name> (tests only); a no-op otherwise.
    """
    if load_settings().crash_at == name:
        os.kill(os.getpid(), signal.SIGKILL)


def lake_of_key(lake_uri: str, key_path: list[str] | tuple[str, ...]) -> tuple[Lake, str]:
    """Where an asset key's partitions sit in the lake: the folder of every key part but the last, and
    the last part as the asset (`a/b/name` -> `<lake_uri>/a/b/name/date=D/part-0.parquet`)."""
    *folders, asset = key_path
    if not folders:
        raise InvalidNameError(f"asset key {'/'.join(key_path)!r} needs a lake folder part before the asset name")
    names = "/".join(validate_identifier(f) for f in folders)
    return Lake(f"{lake_uri.rstrip('/')}/{names}"), validate_identifier(asset)


class PartitionMissingError(FileNotFoundError):
    """The asked-for partition has never been committed."""


def sha256_of(fs: pafs.FileSystem, path: str) -> str:
    """SHA-256 of a file's content on any pyarrow filesystem, streamed."""
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def filesystem_for(uri: str) -> tuple[pafs.FileSystem, str]:
    """Return a pyarrow filesystem and the path inside it for a local path or `s3://` URI."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        settings = load_settings()
        endpoint = settings.s3_endpoint
        kwargs: dict = {"region": settings.aws_region}
        if endpoint:
            url = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
            kwargs["endpoint_override"] = url.netloc
            kwargs["scheme"] = url.scheme
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
        if not _PART_RE.fullmatch(part):
            raise InvalidNameError(f"invalid file name {part!r} inside a partition")
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
        """Open a committed partition for streaming reads; `with lake.parquet_file(...) as f:` closes it
        (the ParquetFile owns the stream it opened, an S3 connection too)."""
        path = self.partition_file(asset, date, part)
        try:
            # Buffered page-by-page reads: memory follows the batch size, not the row-group size.
            return pq.ParquetFile(path, filesystem=self.fs, pre_buffer=False, buffer_size=1 << 20)
        except FileNotFoundError:
            raise PartitionMissingError(
                f"no {asset} partition for {date} at {self.uri_of(path)}"
            ) from None

    def schema(self, asset: str, date: str, part: str = PART_NAME) -> pa.Schema:
        """The Arrow schema (with its key-value metadata) of a committed partition, from its footer."""
        with self.parquet_file(asset, date, part) as parquet_file:
            return parquet_file.schema_arrow

    def num_rows(self, asset: str, date: str, part: str = PART_NAME) -> int:
        """Rows of a committed partition, from its footer."""
        with self.parquet_file(asset, date, part) as parquet_file:
            return parquet_file.metadata.num_rows

    def distinct(self, asset: str, date: str, column: str, part: str = PART_NAME) -> list:
        """The distinct values of one column of a partition, in order of first appearance, read row group
        by row group."""
        found: dict = {}
        with self.parquet_file(asset, date, part) as parquet_file:
            for group in range(parquet_file.num_row_groups):
                values = parquet_file.read_row_group(group, columns=[column]).column(column)
                found.update(dict.fromkeys(values.unique().to_pylist()))
        return list(found)

    def read(self, asset: str, date: str, columns: list[str] | None = None,
             part: str = PART_NAME) -> pa.Table:
        """A whole committed partition (or some columns); the file is closed when read."""
        with self.parquet_file(asset, date, part) as parquet_file:
            return parquet_file.read(columns=columns)

    @contextlib.contextmanager
    def writer(self, asset: str, date: str, schema: pa.Schema,
               part: str = PART_NAME) -> Iterator[pq.ParquetWriter]:
        """Stream a partition into place; it is committed only if the block exits cleanly."""
        with self.atomic_writer(self.partition_file(asset, date, part), schema) as writer:
            yield writer

    @contextlib.contextmanager
    def atomic_writer(self, final: str, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
        """Write a Parquet file that appears at `final` complete or not at all.

        Locally the file is written beside its final name and renamed; for S3 it is written to
        a local temporary file and uploaded in one piece (an object is visible only once whole).
        """
        with self.atomic_path(final) as staging:
            writer = pq.ParquetWriter(staging, schema, compression="zstd")
            try:
                yield writer
            finally:
                writer.close()

    @contextlib.contextmanager
    def atomic_path(self, final: str) -> Iterator[str]:
        """A local staging path for a file that another writer (DuckDB's COPY, a copy) fills; committed
        to `final` only if the block exits cleanly, removed otherwise."""
        if self.is_local:
            self.fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
            staging = f"{final}.{uuid.uuid4().hex}{TMP_SUFFIX}"
        else:
            fd, staging = tempfile.mkstemp(suffix=".parquet" + TMP_SUFFIX)
            os.close(fd)
        try:
            yield staging
            self.commit_file(staging, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(staging)

    @contextlib.contextmanager
    def partition_path(self, asset: str, date: str, part: str = PART_NAME) -> Iterator[str]:
        """`atomic_path` for a partition: a local path to fill; the partition appears when the block exits."""
        with self.atomic_path(self.partition_file(asset, date, part)) as staging:
            yield staging

    def local_path(self, asset: str, date: str, part: str = PART_NAME) -> str | None:
        """A committed partition's path on local disk (for DuckDB to read directly), or None on S3."""
        return self.partition_file(asset, date, part) if self.is_local else None

    def copy(self, asset: str, date: str, target: str, part: str = PART_NAME) -> str:
        """Publish a committed partition as `target`'s partition of the same day, byte for byte, streamed
        (never read into memory); it appears atomically. Returns the committed URI."""
        source = self.partition_file(asset, date, part)
        if not self.exists(asset, date, part):
            raise PartitionMissingError(f"no {asset} partition for {date} at {self.uri_of(source)}")
        final = self.partition_file(target, date, part)
        with self.atomic_path(final) as staging:
            pafs.copy_files(source, staging, source_filesystem=self.fs,
                            destination_filesystem=pafs.LocalFileSystem())
        return self.uri_of(final)

    def commit_file(self, local_source: str, final: str) -> None:
        """Make a finished local file visible at `final` in one atomic step."""
        crash_point("commit")
        if self.is_local:
            os.replace(local_source, final)
        else:
            pafs.copy_files(local_source, final, source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=self.fs)

    def staging_dir(self, asset: str, date: str) -> str:
        """Where a partition's checkpoints live until it is committed (never read by consumers)."""
        return f"{self.root}/_staging/{validate_identifier(asset)}/date={validate_partition_key(date)}"

    def list_files(self, directory: str) -> list[str]:
        infos = self.fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.File)

    def list_dirs(self, directory: str) -> list[str]:
        infos = self.fs.get_file_info(pafs.FileSelector(directory, allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

    def delete_dir(self, directory: str) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            self.fs.delete_dir(directory)

    def footer_digest(self, asset: str, date: str) -> str:
        """SHA-256 over a partition file's size and Parquet footer: cheap change detection.

        The footer holds every column chunk's offsets, sizes and statistics, so a rewrite with
        different content changes it, without hashing gigabytes on every run.
        """
        path = self.partition_file(asset, date)
        size = self.fs.get_file_info(path).size
        with self.fs.open_input_file(path) as handle:
            handle.seek(size - 8)
            tail = handle.read(8)
            footer_len = int.from_bytes(tail[:4], "little")
            handle.seek(size - 8 - footer_len)
            footer = handle.read(footer_len)
        return hashlib.sha256(size.to_bytes(8, "little") + footer).hexdigest()

    def file_digest(self, path: str) -> str:
        return sha256_of(self.fs, path)

    def write(self, asset: str, date: str, table: pa.Table, part: str = PART_NAME,
              row_group_rows: int = ROW_GROUP_ROWS) -> str:
        """Write a whole table as the partition; returns the committed URI.

        Row groups bound a streaming reader's memory and are the unit of checkpointed scoring:
        expensive rows (texts for a transformer) want smaller ones.
        """
        with self.writer(asset, date, table.schema, part) as writer:
            writer.write_table(table, row_group_size=row_group_rows)
        return self.uri_of(self.partition_file(asset, date, part))

    def delete(self, asset: str, date: str, part: str = PART_NAME) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.partition_file(asset, date, part))
