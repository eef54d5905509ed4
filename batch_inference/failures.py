"""Error classification in one place: permanent errors fail at once, transient ones are retried.

No Dagster import, and no import of the project's error classes either (modules move): they are
recognised by class name anywhere in the exception's MRO.

- **Permanent**: the project's own permanent errors (bad input file, registry/untrusted model,
  invalid names, missing upstream partition, corrupt artifact, plugin errors); artifacts that do
  not parse (safetensors `SafetensorError`, unpickling errors; JSON errors are ValueErrors);
  `ValueError`, `TypeError`, `KeyError` and the like; S3 4xx and MLflow 4xx answers.
- **Transient**: `ConnectionError`, `TimeoutError`, network errnos (reset, refused, unreachable,
  broken pipe); S3 5xx / throttling (botocore `ClientError` by status or code, pyarrow `OSError`
  messages with "HTTP status 5xx", "SlowDown", "Throttl", "Connection", "timed out"); HTTP
  client connection/timeout errors (requests, urllib3, botocore) by class name; DuckDB "Could
  not set lock" and sqlite "database is locked"; MLflow `RestException`/`MlflowException` whose
  HTTP status is 5xx or 429.
- An error with none of these signals inherits the verdict of its cause (`raise ... from exc`,
  or the exception being handled), so "model load failed" caused by a ConnectionError retries.
- **Unknown errors are permanent**: a retry must be justified by a positive transient signal,
  so nothing retries forever on a bug, and the failure shows at once with its message.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

PERMANENT, TRANSIENT = "permanent", "transient"
Classification = Literal["permanent", "transient"]

PERMANENT_NAMES = {"BadInputFileError", "ModelRegistryError", "UntrustedModelError", "InvalidNameError",
                   "PartitionMissingError", "CorruptArtifactError", "PluginError",
                   "SafetensorError", "UnpicklingError"}
# Client-library errors that mean "the network / the service did not answer" (matched by name,
# so requests, urllib3, botocore and aiohttp need not be imported).
TRANSIENT_NAMES = {"ConnectTimeout", "ReadTimeout", "Timeout", "ChunkedEncodingError",
                   "ConnectTimeoutError", "ReadTimeoutError", "NewConnectionError", "ProtocolError",
                   "MaxRetryError", "EndpointConnectionError", "ConnectionClosedError",
                   "ResponseStreamingError", "IncompleteReadError", "ServerDisconnectedError",
                   "ClientConnectorError"}
TRANSIENT_ERRNOS = {errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.ETIMEDOUT,
                    errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EPIPE, errno.EAGAIN}
# Substrings of messages (pyarrow's S3 errors are plain OSErrors; DuckDB's lock error an IOException).
TRANSIENT_MESSAGES = ("HTTP status 5", "SlowDown", "Throttl", "Connection", "connection reset",
                      "timed out", "Timeout", "Could not set lock", "database is locked",
                      "Temporary failure in name resolution", "Service Unavailable", "TooManyRequests",
                      "RequestLimitExceeded")
S3_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "ThrottledException",
                      "RequestLimitExceeded", "TooManyRequestsException", "RequestThrottled",
                      "ProvisionedThroughputExceededException", "InternalError", "ServiceUnavailable",
                      "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"}


# The runbook of each failure mode (docs/runbooks/README.md): the one table of runbooks.
RUNBOOKS = {
    "F1": "docs/runbooks/F1.md",  # late / missed partition
    "F2": "docs/runbooks/F2.md",  # bad input, quarantine, failed blocking checks
    "F3": "docs/runbooks/F3.md",  # stragglers, slow or idle scoring
    "F4": "docs/runbooks/F4.md",  # model / artifact problems
    "F5": "docs/runbooks/F5.md",  # drift ERROR
    "F6": "docs/runbooks/F6.md",  # storage / access errors
    "F7": "docs/runbooks/F7.md",  # resource exhaustion, stuck run
    "SLO": "docs/runbooks/SLO.md",  # success-rate SLO, alert path
    "promotion_gate": "docs/runbooks/promotion_gate.md",  # a version refused by the promotion gate
    "performance_drop": "docs/runbooks/performance_drop.md",  # realized performance below the evaluation set
}
# The failure mode of each kind of check (a check is named `<asset>_<kind>`).
CHECK_FAILURE_MODES = {"schema": "F2", "completeness": "F2", "drift": "F5", "model_version": "F4"}


def check_failure_mode(check_name: str) -> str:
    """The failure mode of a check, by the kind its name ends with (`schema`'s, F2, if none)."""
    return next((mode for kind, mode in CHECK_FAILURE_MODES.items() if check_name.endswith(kind)), "F2")


def runbook_for_check(check_name: str) -> str:
    """The runbook (repository path) of a failed check, e.g. `predictions_drift` -> docs/runbooks/F5.md."""
    return RUNBOOKS[check_failure_mode(check_name)]


class CorruptArtifactError(ValueError):
    """A model artifact whose digest matched but which does not parse: retrying cannot fix it."""


@contextmanager
def corrupt_artifact(path: str) -> Iterator[None]:
    """Turn a parse error of the artifact at `path` (safetensors, JSON, text) into CorruptArtifactError."""
    try:
        yield
    except (ValueError, UnicodeDecodeError, EOFError) as exc:
        if isinstance(exc, CorruptArtifactError):
            raise
        raise CorruptArtifactError(f"model artifact {path} does not parse: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        if not _names(exc) & {"SafetensorError", "UnpicklingError"}:
            raise
        raise CorruptArtifactError(f"model artifact {path} does not parse: {type(exc).__name__}: {exc}") from exc


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status of a botocore ClientError or an MLflow exception, if it carries one."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int):
            return status
    get_status = getattr(exc, "get_http_status_code", None)
    if callable(get_status):
        try:
            status = get_status()
        except Exception:  # noqa: BLE001 - a foreign object; no status then
            return None
        return status if isinstance(status, int) else None
    return None


def _own_signal(exc: BaseException) -> Classification | None:
    """The verdict from `exc` itself, or None when it carries no signal either way."""
    names = _names(exc)
    if names & PERMANENT_NAMES:
        return PERMANENT
    response = getattr(exc, "response", None)
    if "ClientError" in names and isinstance(response, dict):  # botocore
        code = str(response.get("Error", {}).get("Code", ""))
        status = _http_status(exc)
        if code in S3_TRANSIENT_CODES or "Throttl" in code or (status is not None and status >= 500):
            return TRANSIENT
        return PERMANENT  # AccessDenied, NoSuchKey, ...: asking again gets the same answer
    if "MlflowException" in names:
        status = _http_status(exc)
        if status is not None and (status >= 500 or status == 429):
            return TRANSIENT
        return PERMANENT
    if names & TRANSIENT_NAMES or isinstance(exc, ConnectionError | TimeoutError):
        return TRANSIENT
    message = str(exc)
    if isinstance(exc, OSError) or "IOException" in names or "OperationalError" in names:
        if getattr(exc, "errno", None) in TRANSIENT_ERRNOS:
            return TRANSIENT
        if any(marker in message for marker in TRANSIENT_MESSAGES):
            return TRANSIENT
    if isinstance(exc, json.JSONDecodeError):
        return PERMANENT
    return None


def classify(exc: BaseException) -> Classification:
    """"permanent" or "transient" (see the module docstring); unknown errors are permanent."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        verdict = _own_signal(current)
        if verdict is not None:
            return verdict
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return PERMANENT


def is_permanent(exc: BaseException) -> bool:
    """True for errors a retry cannot fix (bad input, untrusted or corrupt model, bad names, bugs)."""
    return classify(exc) == PERMANENT


def is_transient(exc: BaseException) -> bool:
    """True for errors worth another try (network, throttling, 5xx, a lock held a bit too long)."""
    return classify(exc) == TRANSIENT
