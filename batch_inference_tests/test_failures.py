"""classify / is_permanent: every kind of failure the pipeline meets, with real library errors."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from mlflow.exceptions import MlflowException, RestException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

from batch_inference.conform import BadInputFileError
from batch_inference.failures import (
    PERMANENT,
    TRANSIENT,
    CorruptArtifactError,
    classify,
    corrupt_artifact,
    is_permanent,
    is_transient,
)


def _project_error(name: str, base: type[Exception]) -> Exception:
    """The project's error classes are matched by name (their modules are moving)."""
    return type(name, (base,), {})(f"a {name}")


@pytest.mark.parametrize("exc", [
    BadInputFileError("landing file t.parquet is missing required column(s) amount"),
    _project_error("ModelRegistryError", RuntimeError),
    _project_error("UntrustedModelError", RuntimeError),  # digest mismatch
    _project_error("InvalidNameError", ValueError),
    _project_error("PartitionMissingError", FileNotFoundError),  # an OSError, but permanent
    _project_error("PluginError", RuntimeError),
    CorruptArtifactError("weights do not parse"),
    ValueError("bad"), TypeError("bad"), KeyError("missing"),
    RuntimeError("unknown errors are permanent: nothing retries forever"),
    FileNotFoundError(errno.ENOENT, "No such file", "/lake/x.parquet"),
    OSError(errno.ENOSPC, "No space left on device"),
    ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"},
                 "ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject"),
    ClientError({"Error": {"Code": "NoSuchKey"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "GetObject"),
    RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no model"}),
    MlflowException("no such version", error_code=RESOURCE_DOES_NOT_EXIST),
], ids=lambda e: type(e).__name__)
def test_permanent(exc: Exception) -> None:
    assert classify(exc) == PERMANENT and is_permanent(exc) and not is_transient(exc)


@pytest.mark.parametrize("exc", [
    ConnectionError("registry unreachable"),
    ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
    TimeoutError("timed out"),
    OSError(errno.ECONNRESET, "Connection reset by peer"),
    ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                 "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject"),
    ClientError({"Error": {"Code": "ThrottlingException"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "X"),
    ClientError({"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "GetObject"),
    EndpointConnectionError(endpoint_url="https://s3.example.com"),
    OSError("When reading information for key 'lake/x.parquet' in bucket 'b': AWS Error UNKNOWN "
            "(HTTP status 503) during HeadObject operation: No response body."),
    OSError("When uploading part for key 'x' in bucket 'b': AWS Error SLOW_DOWN during UploadPart "
            "operation: Please reduce your request rate. (SlowDown)"),
    OSError("AWS Error NETWORK_CONNECTION during GetObject operation: curlCode: 7, Couldn't connect; Connection"),
    RestException({"error_code": "INTERNAL_ERROR", "message": "boom"}),
    RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "try later"}),
    RestException({"error_code": "503", "message": "proxy"}),
    RestException({"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "429"}),
    duckdb.IOException('Could not set lock on file "w.duckdb": Conflicting lock is held'),
], ids=lambda e: f"{type(e).__name__}:{str(e)[:30]}")
def test_transient(exc: Exception) -> None:
    assert classify(exc) == TRANSIENT and is_transient(exc) and not is_permanent(exc)


def test_real_duckdb_lock_error_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,sys,time; c=duckdb.connect({str(path)!r}); "
                               "print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(duckdb.Error) as info:
            duckdb.connect(str(path))
        assert "Could not set lock" in str(info.value)
        assert classify(info.value) == TRANSIENT
    finally:
        holder.kill()
        holder.wait()


def test_cause_decides_when_the_wrapper_has_no_signal() -> None:
    def wrapped(cause: BaseException) -> Exception:
        try:
            raise cause
        except BaseException as inner:
            try:
                raise RuntimeError("loading the champion failed") from inner
            except RuntimeError as outer:
                return outer

    assert classify(wrapped(ConnectionError("down"))) == TRANSIENT
    assert classify(wrapped(ValueError("bad"))) == PERMANENT
    # A permanent error itself wins over a transient cause.
    try:
        try:
            raise ConnectionError("down")
        except ConnectionError as exc:
            raise BadInputFileError("bad file") from exc
    except BadInputFileError as exc:
        assert classify(exc) == PERMANENT
    # Context suppressed with `from None`: the wrapper alone decides (unknown: permanent).
    try:
        try:
            raise ConnectionError("down")
        except ConnectionError:
            raise RuntimeError("no signal") from None
    except RuntimeError as exc:
        assert classify(exc) == PERMANENT


def test_corrupt_artifacts_are_permanent(tmp_path: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(SafetensorError) as raw:
        load_file(str(weights))
    assert classify(raw.value) == PERMANENT
    with pytest.raises(CorruptArtifactError, match="model.safetensors does not parse") as info, \
            corrupt_artifact(str(weights)):
        load_file(str(weights))
    assert classify(info.value) == PERMANENT

    with pytest.raises(CorruptArtifactError, match="reference.json does not parse") as info, \
            corrupt_artifact("reference.json"):
        json.loads("{truncated")
    assert isinstance(info.value.__cause__, json.JSONDecodeError) and is_permanent(info.value)

    with pytest.raises(ConnectionError), corrupt_artifact("x"):  # anything else passes through
        raise ConnectionError("down")
