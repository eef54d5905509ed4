"""Finding new or changed landing files (no Dagster import): the landing sensor's logic.

The cursor remembers, per file name, its size, modification time and SHA-256; a file is hashed
again only when its size or modification time changes, so a tick stays cheap over a year of files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow.fs as pafs

from batch_inference.validation import InvalidNameError, parse_landing_name


@dataclass(frozen=True)
class LandedFile:
    name: str
    entity: str
    date: str
    sha256: str

    @property
    def run_key(self) -> str:
        """Same name and same content: same key, so a re-delivered identical file starts nothing."""
        return f"{self.name}:{self.sha256[:16]}"


@dataclass
class ScanResult:
    changed: list[LandedFile]
    skipped: list[tuple[str, str]]  # (file name, why) newly seen problems
    cursor: dict[str, dict]


def sha256_of(fs: pafs.FileSystem, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def scan_landing(fs: pafs.FileSystem, root: str, cursor: dict[str, dict],
                 is_valid_date=lambda date: True) -> ScanResult:
    """Compare the landing folder with the cursor; return changed files, problems and the new cursor."""
    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    new_cursor: dict[str, dict] = {}
    changed: list[LandedFile] = []
    skipped: list[tuple[str, str]] = []
    for info in sorted(infos, key=lambda i: i.base_name):
        name = info.base_name
        if info.type != pafs.FileType.File or name.startswith(".") or name.endswith(".tmp"):
            continue  # hidden or in-flight files are not deliveries yet
        stamp = {"size": info.size, "mtime_ns": info.mtime_ns}
        seen = cursor.get(name, {})
        try:
            entity, date = parse_landing_name(name)
            if not is_valid_date(date):
                raise InvalidNameError(f"date {date} of {name!r} is outside the partitions")
        except InvalidNameError as exc:
            new_cursor[name] = {**stamp, "problem": str(exc)}
            if seen.get("problem") != str(exc):
                skipped.append((name, str(exc)))
            continue
        if seen.get("size") == info.size and seen.get("mtime_ns") == info.mtime_ns and "sha256" in seen:
            new_cursor[name] = seen
            continue
        digest = sha256_of(fs, info.path)
        new_cursor[name] = {**stamp, "sha256": digest}
        if seen.get("sha256") != digest:
            changed.append(LandedFile(name, entity, date, digest))
    return ScanResult(changed, skipped, new_cursor)
