"""A queue message's or a schedule's worth of work, with the retry semantics (DESIGN: failures
are retryable or final).

- final (the data, the spec, the model, a malformed message): logged, notified, and returned as
  a `failed` outcome, so the shell returns normally and the platform deletes the message;
- retryable (a transient infrastructure fault): raised, so the platform makes the message
  visible again and, after the queue's max receives, moves it to `<queue>-poison` (Azure) or
  the DLQ (AWS).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from mlops_kit import errors
from mlops_kit.core.context import Context
from mlops_kit.core.monitoring.monitor import run_monitor
from mlops_kit.core.monitoring.retrain import Announce
from mlops_kit.core.pipeline import on_object_created
from mlops_kit.errors import MlopsKitError, TransientError, ValidationError
from mlops_kit.handlers.events import CreatedObject, created_objects
from mlops_kit.ports import Notifier

log = logging.getLogger("mlops_kit.handlers")
T = TypeVar("T")
FAILED = "failed"


class MonitoringFailed(RuntimeError):
    """Monitoring failed for at least one model (the others ran): the scheduled run fails, so
    the platform's failure metrics and alerts see it."""


def is_retryable(exc: BaseException) -> bool:
    """Would a later delivery succeed? errors.is_retryable decides when errors.py has it (the
    classification of issue 12); until then: TransientError is retryable, every other
    MlopsKitError is final (ours are about the data, the spec or the model), and an exception
    that is not ours (a connection reset, a timeout) is retryable."""
    decide = getattr(errors, "is_retryable", None)
    if callable(decide):
        return bool(decide(exc))
    if isinstance(exc, TransientError):
        return True
    return not isinstance(exc, MlopsKitError)


def _message(exc: BaseException) -> str:
    if isinstance(exc, MlopsKitError):
        return exc.message
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"internal error {type(exc).__name__}" + (f": {text}" if text else "")


def settle(notifier: Notifier, stage: str, fn: Callable[[], T], **about: Any) -> T | dict[str, Any]:
    """Run `fn`. A final failure becomes a `failed` outcome (logged, notified); a retryable one
    propagates. `about` (model, key) goes into the outcome and the notification."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - every failure is classified, none escapes raw
        if is_retryable(exc):
            log.warning("%s failed, will be retried: %s %s", stage, _message(exc), about)
            raise
        known = {k: v for k, v in about.items() if v is not None}
        log.warning("%s failed (final): %s %s", stage, _message(exc), known)
        out: dict[str, Any] = {"status": FAILED, "final": True, "stage": stage,
                               "error": _message(exc), "error_type": type(exc).__name__, **known}
        if isinstance(exc, MlopsKitError):
            out["error_code"] = exc.code
            if exc.field:
                out["field"] = exc.field
        model = known.get("model")
        notifier.publish(f"mlops-kit: {stage} job failed" + (f" for {model}" if model else ""),
                         {"event": "job_failed", **{k: out[k] for k in (
                             "stage", "error", "error_type")}, **known})
        return out


def validate_message(ctx: Context, body: Any, *, containers: Collection[str] | None = None
                     ) -> list[dict[str, Any]]:
    """Every object the message announces -> on_object_created (idempotent per key + etag, so
    a redelivered message repeats nothing that was done). One outcome per object; a message
    that cannot be read is one `failed` outcome."""
    parsed = settle(ctx.notifier, "validate", lambda: created_objects(body, containers=containers))
    if isinstance(parsed, dict):
        return [parsed]
    from mlops_kit.core import layout

    def one(o: CreatedObject) -> Callable[[], dict[str, Any]]:
        return lambda: on_object_created(ctx, o.key, o.etag, o.version_id)

    return [settle(ctx.notifier, "validate", one(o), key=o.key,
                   model=layout.parse_key(o.key).model) for o in parsed]


def _load(body: Any) -> Any:
    if isinstance(body, (bytes, str)):
        try:
            return json.loads(body)
        except ValueError:
            raise ValidationError("message: not JSON", field="message") from None
    return body


def _job(body: Any) -> dict[str, Any]:
    body = _load(body)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) \
            or not isinstance(body.get("dataset_key"), str) or "sha256" not in body:
        raise ValidationError("message: not a training job (model, dataset_key, sha256)",
                              field="message")
    return body


def train_message(ctx: Context, body: Any) -> dict[str, Any]:
    """A training job -> train_job (idempotent on dataset sha256 + spec hash)."""

    def run() -> dict[str, Any]:
        job = _job(body)
        from mlops_kit.core.training.usecase import train_job  # sklearn: only when training

        return train_job(ctx, job)

    try:
        peek = _load(body)
    except ValidationError:
        peek = None
    about = {"model": peek.get("model"), "key": peek.get("dataset_key")} \
        if isinstance(peek, dict) else {}
    return settle(ctx.notifier, "train", run, **about)


def monitor_models(ctx: Context, *, announce: Announce | None = None) -> dict[str, Any]:
    """run_monitor for every registered model. One model failing does not stop the others; the
    run then raises MonitoringFailed. On a cloud `announce` is None: the object-created event
    of the retrain dataset (Event Grid, S3) starts its validation."""
    reports, failures = [], []
    for model in ctx.registry.list_models():
        try:
            r = run_monitor(ctx, model, announce=announce)
        except Exception as exc:  # noqa: BLE001 - one model must not stop the others
            log.error("monitoring %s failed: %s", model, _message(exc))
            failures.append({"model": model, "error": _message(exc)})
            continue
        reports.append({k: r.get(k) for k in ("model", "version", "status", "rows", "drifted",
                                               "report_key", "reason", "retrain")})
    if failures:
        raise MonitoringFailed(f"monitoring failed for {[f['model'] for f in failures]}: "
                               f"{failures}")
    return {"reports": reports, "errors": failures}
