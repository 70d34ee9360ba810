"""botocore errors -> the kit's error hierarchy (errors.py). Callers never see ClientError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from mlops_kit.errors import (
    ConditionFailed,
    ConfigError,
    MlopsKitError,
    NotFound,
    StorageError,
    TransientError,
)

NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchBucket", "ResourceNotFoundException",
             "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
CONDITION = {"ConditionalCheckFailedException", "TransactionCanceledException"}
TRANSIENT = {"ProvisionedThroughputExceededException", "ThrottlingException", "Throttling",
             "RequestLimitExceeded", "SlowDown", "InternalServerError", "InternalError",
             "ServiceUnavailable", "RequestTimeout", "TransactionConflictException",
             "ThrottledException", "KMSThrottlingException"}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(exc: Exception, what: str) -> MlopsKitError:
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in NOT_FOUND:
            return NotFound(f"{what} not found", field="key")
        if code in CONDITION:
            if code == "TransactionCanceledException" and _cancelled_by_conflict(exc):
                return TransientError(f"{what}: transaction conflict, retry")
            return ConditionFailed(f"{what}: condition failed")
        if code in TRANSIENT or status >= 500:
            return TransientError(f"{what}: service unavailable ({code or status})")
        return StorageError(f"{what} failed ({code or status})")
    if isinstance(exc, (ConnectionError, HTTPClientError)):
        return TransientError(f"{what}: connection failed")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return ConfigError(f"{what}: no AWS credentials (set AWS_PROFILE, or run where a role "
                           "provides them)")
    return StorageError(f"{what} failed ({type(exc).__name__})")


def _cancelled_by_conflict(exc: ClientError) -> bool:
    """A transaction cancelled only by concurrent transactions (no failed condition) is a retry."""
    reasons = exc.response.get("CancellationReasons") or []
    codes = {r.get("Code") for r in reasons if r.get("Code") not in (None, "None")}
    return bool(codes) and "ConditionalCheckFailed" not in codes and codes <= {
        "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}


@contextmanager
def mapped(what: str) -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate(exc, what) from exc
