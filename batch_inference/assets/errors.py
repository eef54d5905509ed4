"""Transient failures retry with backoff; permanent ones fail at once with a clear message."""

import contextlib
from collections.abc import Iterator

import dagster as dg

from batch_inference.ingest import BadInputFileError
from batch_inference.lake import PartitionMissingError
from batch_inference.modeling.registry import ModelRegistryError
from batch_inference.validation import InvalidNameError

# Registry unreachable, S3 throttling, a lock held a little too long: worth another try.
TRANSIENT_RETRIES = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL,
                                   jitter=dg.Jitter.PLUS_MINUS)

# Bad input, a tampered or foreign model, a missing upstream partition: retrying changes nothing.
PERMANENT = (BadInputFileError, ModelRegistryError, InvalidNameError, PartitionMissingError)


@contextlib.contextmanager
def permanent_errors() -> Iterator[None]:
    """Turn the project's permanent errors into a `dg.Failure` that is never retried."""
    try:
        yield
    except PERMANENT as exc:
        raise dg.Failure(description=f"{type(exc).__name__}: {exc}", allow_retries=False) from exc
