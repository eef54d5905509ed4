"""Model artifacts without torch: the file manifest (name -> SHA-256) every version carries."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

REFERENCE_FILE = "reference.json"
CONFIG_FILE = "config.json"
_FILE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,120}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,120}){0,3}$")


class CorruptArtifactError(ValueError):
    """A version whose digests match but whose files do not parse: a permanent error."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def valid_file_name(name: str) -> str:
    """A relative artifact file name without `..`, absolute paths or odd characters."""
    if not isinstance(name, str) or not _FILE_RE.fullmatch(name) or ".." in name.split("/"):
        raise ValueError(f"invalid artifact file name {name!r}")
    return name


def manifest(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under `directory`, by relative name (symlinks refused)."""
    files = {}
    for path in sorted(directory.rglob("*")):
        if path.is_symlink():
            raise ValueError(f"artifact {path} is a symlink; refusing to register it")
        if path.is_file():
            files[valid_file_name(path.relative_to(directory).as_posix())] = sha256_file(path)
    return files


def manifest_digest(files: dict[str, str]) -> str:
    """One digest for a whole version: SHA-256 of its sorted manifest."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
