"""Validation of untrusted names before they become paths or SQL."""

from __future__ import annotations

import datetime as dt
import re

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LANDING_RE = re.compile(r"^(?P<entity>[a-z][a-z0-9_]*)_(?P<date>\d{4}-\d{2}-\d{2})\.parquet$")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class InvalidNameError(ValueError):
    """A partition key, file name or identifier that is not allowed."""


def validate_partition_key(key: str) -> str:
    """Return `key` if it is a real calendar date written YYYY-MM-DD, else raise."""
    if not isinstance(key, str) or not _DATE_RE.fullmatch(key):
        raise InvalidNameError(f"invalid partition key {key!r}: expected a date YYYY-MM-DD")
    try:
        dt.date.fromisoformat(key)
    except ValueError as exc:
        raise InvalidNameError(f"invalid partition key {key!r}: {exc}") from None
    return key


def parse_landing_name(name: str) -> tuple[str, str]:
    """Split a landing file name like `<entity>_2026-11-20.parquet` into (entity, date)."""
    match = _LANDING_RE.fullmatch(name or "")
    if match is None:
        raise InvalidNameError(
            f"invalid landing file name {name!r}: expected <entity>_YYYY-MM-DD.parquet"
        )
    return match["entity"], validate_partition_key(match["date"])


IDENTIFIER_RULE = ("allowed: letters A-Z a-z, digits 0-9 and underscore `_`, starting with a letter or "
                   "underscore, at most 63 characters")


def validate_identifier(name: str, field: str = "identifier") -> str:
    """Return `name` if it is a plain SQL identifier (letters, digits, underscore), else raise an
    error that names the `field` it came from and the characters allowed."""
    if not isinstance(name, str) or not _IDENTIFIER_RE.fullmatch(name):
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c == "_"))}) \
            if isinstance(name, str) else []
        detail = f" (not allowed: {' '.join(repr(c) for c in bad)})" if bad else ""
        raise InvalidNameError(f"invalid {field} {name!r}{detail}; {IDENTIFIER_RULE}")
    return name
