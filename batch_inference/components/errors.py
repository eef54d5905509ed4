"""Transient failures retry with back-off; permanent ones fail at once, classified in one place."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg

from batch_inference.failures import is_permanent

# Registry unreachable, S3 throttling or a 5xx, a lock held a little too long: worth another try.
TRANSIENT_RETRIES = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL,
                                   jitter=dg.Jitter.PLUS_MINUS)


@contextlib.contextmanager
def classified_errors(runbook: str | None = None) -> Iterator[None]:
    """Turn a permanent error (bad input, untrusted or corrupt model, ...) into a `dg.Failure` that is
    never retried; transient ones propagate, so the step's retry policy retries them."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        if not is_permanent(exc):
            raise
        hint = f" Runbook: {runbook}" if runbook else ""
        raise dg.Failure(description=f"{type(exc).__name__}: {exc}.{hint}", allow_retries=False) from exc
