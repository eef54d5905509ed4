"""Plug-ins named in YAML by import path (`package.module:Name`), loaded and checked."""

from __future__ import annotations

import importlib
import re
from typing import Any

_PATH_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class PluginError(ValueError):
    """A plug-in path that does not resolve, or an object that does not fit its protocol."""


def load_object(path: str) -> Any:
    """Import `package.module:Name` (attributes may be dotted: `module:Class.method`)."""
    if not isinstance(path, str) or not _PATH_RE.fullmatch(path):
        raise PluginError(f"invalid plug-in path {path!r}: expected 'package.module:Name'")
    module_name, attr = path.split(":", 1)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"plug-in {path!r}: cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PluginError(f"plug-in {path!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def check_protocol(obj: Any, protocol: type, path: str) -> Any:
    """Return `obj` if it implements `protocol` (a runtime-checkable Protocol), else raise."""
    if not isinstance(obj, protocol):
        raise PluginError(f"plug-in {path!r} does not implement {protocol.__name__}")
    return obj


def locate(path: str) -> None:
    """Check that `package.module:Name` names an importable module, without importing it."""
    import importlib.util

    if not isinstance(path, str) or not _PATH_RE.fullmatch(path):
        raise PluginError(f"invalid plug-in path {path!r}: expected 'package.module:Name'")
    module_name = path.split(":", 1)[0]
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise PluginError(f"plug-in {path!r}: cannot find {module_name!r}: {exc}") from exc
    if found is None:
        raise PluginError(f"plug-in {path!r}: no module named {module_name!r}")
