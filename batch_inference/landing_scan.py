"""Finding new or changed landing files (no Dagster import): the landing sensor's logic.

The cursor remembers, per file name, its size, modification time, content digest and when it was
last hashed. A local file is hashed again when its size or modification time changes, when its
inode changed (ctime, which no writer can set back) at or after its last check, so a corrected
file written with the same size and a restored modification time is still noticed, and on a
rolling full pass (each file about once every `full_pass_seconds`, a few files per tick). A tick
stays cheap over a year of files. On S3 the object's ETag is the digest: nothing is downloaded to notice a change.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow.fs as pafs

from batch_inference.lake import sha256_of
from batch_inference.validation import InvalidNameError, parse_landing_name

FULL_PASS_SECONDS = 24 * 3600  # every file is re-hashed about once a day ...
FULL_PASS_FILES_PER_TICK = 8  # ... a few per tick, the longest unchecked first
# File-system clocks are coarse (a ctime may read a few ms behind the clock that stamped the check):
# a file changed this close to its last check is hashed once more on the next tick.
CLOCK_MARGIN_NS = 2_000_000_000


@dataclass(frozen=True)
class LandedFile:
    name: str
    entity: str
    date: str
    digest: str

    @property
    def run_key(self) -> str:
        """Same name and same content: same key, so a re-delivered identical file starts nothing."""
        return f"{self.name}:{self.digest[:16]}"


@dataclass(frozen=True)
class Listing:
    """One file of the landing area: name, size, modification stamp, and how to get its digest."""

    name: str
    size: int
    mtime: str
    digest: Callable[[], str]
    problem: str = ""  # set for entries that must not be read (a symlink, outside the root)
    changed_ns: int | None = None  # when the inode last changed (local ctime); None where unknown


@dataclass
class ScanResult:
    changed: list[LandedFile]
    skipped: list[tuple[str, str]]  # (file name, why) newly seen problems
    cursor: dict[str, dict]


def list_filesystem(fs: pafs.FileSystem, root: str) -> list[Listing]:
    """A local (or any pyarrow) folder; the digest is the SHA-256 of the content.

    A symlink, or an entry that resolves outside the landing root, is listed with a `problem` and
    never hashed or read: the sensor skips it with a log line (and ingest refuses it too).
    """
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    local = isinstance(fs, pafs.LocalFileSystem)
    real_root = os.path.realpath(root) if local else root
    found = []
    for i in infos:
        if local and os.path.islink(i.path):
            found.append(Listing(i.base_name, 0, "", lambda: "", problem="a symbolic link; not read"))
            continue
        if local and os.path.commonpath([os.path.realpath(i.path), real_root]) != real_root:
            found.append(Listing(i.base_name, 0, "", lambda: "", problem="resolves outside the landing root"))
            continue
        if i.type == pafs.FileType.File:
            changed = os.stat(i.path).st_ctime_ns if local else None
            found.append(Listing(i.base_name, i.size, str(i.mtime_ns), lambda p=i.path: sha256_of(fs, p),
                                 changed_ns=changed))
    return found


def list_s3(client, uri: str) -> list[Listing]:
    """An S3 prefix through a boto3 client (dagster-aws's S3Resource); the digest is the ETag."""
    parsed = urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    prefix = f"{prefix}/" if prefix else ""
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        for obj in page.get("Contents", []):
            etag = obj["ETag"].strip('"')
            found.append(Listing(obj["Key"][len(prefix):], obj["Size"], obj["LastModified"].isoformat(),
                                 lambda e=etag: f"etag-{e}"))
    return found


def _needs_hash(item: Listing, seen: dict) -> bool:
    """Hash again: new size or mtime, never hashed, or changed since (or just before) its last check."""
    if seen.get("size") != item.size or seen.get("mtime") != item.mtime or "digest" not in seen:
        return True
    checked = seen.get("checked_ns")
    return checked is None or (item.changed_ns is not None and item.changed_ns >= checked - CLOCK_MARGIN_NS)


def _due(seen: dict, now_ns: int, full_pass_seconds: float) -> bool:
    """Due for the rolling full pass: last hashed `full_pass_seconds` ago or more."""
    return now_ns - seen.get("checked_ns", 0) >= full_pass_seconds * 1e9


def scan_landing(listings: Iterable[Listing], cursor: dict[str, dict],
                 is_valid_date: Callable[[str], bool] = lambda date: True, now_ns: int | None = None,
                 full_pass_seconds: float = FULL_PASS_SECONDS,
                 full_pass_files: int = FULL_PASS_FILES_PER_TICK) -> ScanResult:
    """Compare the landing area with the cursor; return changed files, problems and the new cursor.

    Besides the files whose stamps say they changed, at most `full_pass_files` files due for the
    rolling full pass (the longest unchecked first) are hashed per call, so a tick stays short.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    new_cursor: dict[str, dict] = {}
    changed: list[LandedFile] = []
    skipped: list[tuple[str, str]] = []
    to_hash: list[tuple[Listing, str, str]] = []
    due: list[tuple[int, Listing, str, str]] = []
    for item in sorted(listings, key=lambda i: i.name):
        name = item.name
        if not name or "/" in name or name.startswith(".") or name.endswith(".tmp"):
            continue  # sub-prefixes, hidden or in-flight files are not deliveries
        stamp = {"size": item.size, "mtime": item.mtime}
        seen = cursor.get(name, {})
        try:
            if item.problem:
                raise InvalidNameError(f"{name!r} is {item.problem}")
            entity, date = parse_landing_name(name)
            if not is_valid_date(date):
                raise InvalidNameError(f"date {date} of {name!r} is outside the partitions")
        except InvalidNameError as exc:
            new_cursor[name] = {**stamp, "problem": str(exc)}
            if seen.get("problem") != str(exc):
                skipped.append((name, str(exc)))
            continue
        new_cursor[name] = seen
        if _needs_hash(item, seen):
            to_hash.append((item, entity, date))
        elif _due(seen, now_ns, full_pass_seconds):
            due.append((seen["checked_ns"], item, entity, date))
    to_hash += [(item, entity, date) for _, item, entity, date in sorted(due, key=lambda d: d[0])[:full_pass_files]]
    for item, entity, date in sorted(to_hash, key=lambda x: x[0].name):
        seen = cursor.get(item.name, {})
        digest = item.digest()  # the check time is taken before hashing: a write during it is seen next tick
        new_cursor[item.name] = {"size": item.size, "mtime": item.mtime, "digest": digest, "checked_ns": now_ns}
        if seen.get("digest") != digest:
            changed.append(LandedFile(item.name, entity, date, digest))
    return ScanResult(changed, skipped, new_cursor)
