"""Error classification in one place: permanent errors fail at once, transient ones are retried."""

from __future__ import annotations

PERMANENT_NAMES = {"BadInputFileError", "ModelRegistryError", "UntrustedModelError", "InvalidNameError",
                   "PartitionMissingError", "CorruptArtifactError", "PluginError"}


def is_permanent(exc: BaseException) -> bool:
    """True for errors a retry cannot fix (bad input, untrusted or corrupt model, bad names)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & PERMANENT_NAMES:
        return True
    if isinstance(exc, ConnectionError | TimeoutError):
        return False
    return isinstance(exc, ValueError | TypeError | KeyError)
