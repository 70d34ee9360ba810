"""One error hierarchy. Adapters translate cloud errors into these; handlers map them to responses.

`status` is the HTTP status a client sees for this error class. Messages are written for users:
they name the field and the rule, and never carry stack traces or internals.
"""

from __future__ import annotations


class MlopsKitError(Exception):
    status = 500
    code = "internal_error"

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


class ConditionFailed(RegistryConflict):
    """Raised by KeyValueTable adapters when a write condition does not hold."""


class PromotionRefused(MlopsKitError):
    status = 409
    code = "promotion_refused"


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


class StorageError(MlopsKitError):
    code = "storage_error"
