"""One error hierarchy. Adapters translate cloud errors into these; handlers map them to responses.

`status` is the HTTP status a client sees for this error class. Messages are written for users:
they name the field and the rule, and never carry stack traces or internals.

`retryable` says what a background job (validate, train) does with the error (DESIGN "failures
are retryable or final"): a retryable error is a transient infrastructure fault, so the message
is released, redelivered and may end in the dead-letter queue (which notifies); anything else is
final: the job ends at once (version `failed`, dataset quarantined, notification, message
acknowledged), because running it again cannot succeed. `is_retryable` extends the rule to
exceptions that are not ours (see there).
"""

from __future__ import annotations

import sqlite3


class MlopsKitError(Exception):
    status = 500
    code = "internal_error"
    retryable = False  # final unless a subclass says otherwise

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        out = {"error": self.message, "code": self.code}
        if self.field:
            out["field"] = self.field
        return out


class ValidationError(MlopsKitError):
    """Bad input from a client or a dataset (names the field and the rule)."""

    status = 400
    code = "invalid_input"


class PayloadTooLarge(ValidationError):
    status = 413
    code = "payload_too_large"


class SpecError(MlopsKitError):
    """A model spec is missing or malformed."""

    status = 400
    code = "invalid_spec"


class InvalidName(ValidationError):
    code = "invalid_name"


class ConfigError(MlopsKitError):
    """The installation or the settings cannot work: a missing extra, a missing or bad
    MLOPSKIT_* variable. The message names what to install or set (the CLI exits 2)."""

    code = "configuration"


class NotFound(MlopsKitError):
    status = 404
    code = "not_found"


class Unauthorized(MlopsKitError):
    status = 401
    code = "unauthorized"


class RegistryConflict(MlopsKitError):
    """A conditional write lost a race (version taken, alias moved meanwhile)."""

    status = 409
    code = "conflict"
    retryable = True  # contention: the next delivery sees the winner's write


class ConditionFailed(RegistryConflict):
    """Raised by KeyValueTable adapters when a write condition does not hold."""


class PromotionRefused(MlopsKitError):
    status = 409
    code = "promotion_refused"
    retryable = False  # a policy decision, not a race


class BreakingChange(PromotionRefused):
    """A version's input contract would break the callers of the one it replaces (names the
    features); `--allow-breaking --reason` overrides it, audited in history."""

    code = "breaking_change"

    def __init__(self, message: str, *, features: list[str] | None = None) -> None:
        super().__init__(message, field="features")
        self.features = list(features or [])


class IntegrityError(MlopsKitError):
    """An artifact does not match its recorded sha256."""

    status = 500
    code = "integrity_error"


class TrainingError(MlopsKitError):
    code = "training_error"


class ExportError(MlopsKitError):
    code = "export_error"


class TransientError(MlopsKitError):
    """Throttling / 5xx from a backing service: safe to retry."""

    status = 503
    code = "unavailable"
    retryable = True


class StorageError(MlopsKitError):
    """A backing store failed (timeouts, denied, unexpected replies): infrastructure, so retried;
    a persistent one ends in the DLQ, whose arrival notifies an operator."""

    code = "storage_error"
    retryable = True


def is_retryable(exc: BaseException) -> bool:
    """Retry only what a later attempt can fix.

    - the kit's errors carry their own `retryable` (TransientError, StorageError, races: yes;
      spec, validation, training, export, not found, integrity: no);
    - OSError outside our mapping (connection reset, timeout, disk full, permission) and a
      locked/busy SQLite database: infrastructure, yes;
    - anything else (KeyError, AttributeError, ...) is a bug in the kit or its libraries: a
      retry would hit the same bug, so it is final. The job reports the exception type and
      message (never the traceback, which goes to the log)."""
    if isinstance(exc, MlopsKitError):
        return exc.retryable
    return isinstance(exc, (OSError, sqlite3.OperationalError))


def describe(exc: BaseException) -> str:
    """A one-line message for a job outcome: ours verbatim, others as `Type: first line`."""
    if isinstance(exc, MlopsKitError):
        return exc.message
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"internal error {type(exc).__name__}" + (f": {text}" if text else "")
