"""azure-core errors -> the kit's error hierarchy (errors.py). Callers never see AzureError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from mlops_kit.errors import ConditionFailed, MlopsKitError, NotFound, StorageError, TransientError

# A write lost a race against its condition (create-only or If-Match).
CONDITION = {"BlobAlreadyExists", "EntityAlreadyExists", "ConditionNotMet",
             "UpdateConditionNotSatisfied", "TargetConditionNotMet", "SourceConditionNotMet"}
TRANSIENT = {"ServerBusy", "OperationTimedOut", "InternalError", "InternalServerError",
             "ContainerBeingDeleted", "QueueBeingDeleted", "TableBeingDeleted",
             "ServiceUnavailable", "TooManyRequests"}


# A queue receipt that is no longer valid: the message was deleted or received again.
NOT_FOUND = {"PopReceiptMismatch", "MessageNotFound"}


def error_code(exc: HttpResponseError) -> str:
    code = getattr(exc, "error_code", None) or ""
    return str(getattr(code, "value", code))  # the SDKs give str enums (StorageErrorCode.X)


def translate(exc: Exception, what: str) -> MlopsKitError:
    if isinstance(exc, ClientAuthenticationError) and not exc.status_code:
        # raised by DefaultAzureCredential before any request: no identity to use at all
        return StorageError(f"{what}: no Azure credential (a managed identity in the cloud, "
                            "`az login` on a workstation)")
    if isinstance(exc, HttpResponseError):
        code, status = error_code(exc), exc.status_code or 0
        if code in TRANSIENT or status in (408, 429) or status >= 500:
            return TransientError(f"{what}: service unavailable ({code or status})")
        if code in CONDITION or isinstance(exc, ResourceModifiedError) or status == 412:
            return ConditionFailed(f"{what}: condition failed")
        if isinstance(exc, ResourceNotFoundError) or status == 404 or code in NOT_FOUND:
            return NotFound(f"{what} not found", field="key")
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
            return StorageError(f"{what}: not authorized ({code or status}); check the identity's "
                                "role assignments on the storage account")
        return StorageError(f"{what} failed ({code or status})")
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return TransientError(f"{what}: connection failed")
    return StorageError(f"{what} failed ({type(exc).__name__})")


@contextmanager
def mapped(what: str) -> Iterator[None]:
    try:
        yield
    except AzureError as exc:
        raise translate(exc, what) from exc
