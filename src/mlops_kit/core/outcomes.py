"""How a background job ends (DESIGN "failures are retryable or final").

A job (validate an upload, train a version, ingest labels) ends in exactly one outcome:
- done: validated -> registered / rejected (the gates said no), labels received;
- final failure: the data, the spec or the model cannot succeed however often it runs. The use
  case records it where the user looks (a quarantined dataset with its report, a version
  `failed` with its reason), a notification goes out, and the message is acknowledged;
- retryable failure: a transient infrastructure fault. The exception propagates, the runtime
  releases the message (local worker) or reports it in batchItemFailures (Lambda), and after the
  queue's receive count it lands in the dead-letter queue, whose arrival notifies.

`run_job` is the last line for the runtimes: whatever final failure a use case did not turn into
an outcome itself (an unknown exception is a bug: final) becomes a `failed` outcome here.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from mlops_kit.errors import MlopsKitError, describe, is_retryable
from mlops_kit.ports import Notifier

_T = TypeVar("_T")  # what a job's function returns (run_job passes it through)

__all__ = ["FAILED", "failure", "run_job"]

log = logging.getLogger("mlops_kit.jobs")
FAILED = "failed"


def failure(exc: BaseException, **fields: Any) -> dict[str, Any]:
    """The outcome of a final failure: the message for users, the error type, no traceback."""
    out: dict[str, Any] = {"status": FAILED, "final": True, "error": describe(exc),
                           "error_type": type(exc).__name__}
    if isinstance(exc, MlopsKitError):
        out["error_code"] = exc.code
        if exc.field:
            out["field"] = exc.field
    return {**out, **fields}


def log_failure(stage: str, exc: BaseException, **context: Any) -> None:
    """Ours: a warning with the message. A bug: an error naming the type, the message and the
    line that raised it (one line: the CLI logs warnings to the user's terminal, and users never
    see tracebacks); the full traceback at INFO (`mlops-kit -v`, or a log level of INFO)."""
    if isinstance(exc, MlopsKitError):
        log.warning("%s failed (final): %s %s", stage, exc.message, context)
        return
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    log.error("%s crashed (final, a bug): %s%s %s", stage, describe(exc), where, context)
    log.info("%s crash traceback", stage, exc_info=exc)


def dead_letter_alert(notifier: Notifier, queue: str, *, message_id: str | None,
                      attempts: int | None, body: Any = None, error: str | None = None) -> None:
    """A message gave up retrying (a DLQ or poison queue holds it now): tell an operator, as
    the DLQ-depth alarm does on AWS."""
    job = body if isinstance(body, dict) else {}
    notifier.publish(
        f"mlops-kit ALERT: a {queue} message reached the dead-letter queue",
        {"event": "dead_letter", "queue": queue, "message_id": message_id,
         "receive_count": attempts, "model": job.get("model"),
         "key": job.get("dataset_key") or job.get("key"),
         **({"error": error} if error else {})})


def run_job(notifier: Notifier, stage: str, fn: Callable[[dict[str, Any]], _T],
            body: dict[str, Any]) -> _T | dict[str, Any]:
    """Run one job. Returns its outcome; a final failure becomes a `failed` outcome (logged,
    notified); a retryable one propagates so the runtime redelivers the message."""
    try:
        return fn(body)
    except Exception as exc:  # noqa: BLE001 - every failure is classified, none escapes raw
        if is_retryable(exc):
            raise
        model = body.get("model") if isinstance(body, dict) else None
        key = (body.get("dataset_key") or body.get("key")) if isinstance(body, dict) else None
        log_failure(stage, exc, model=model, key=key)
        out = failure(exc, stage=stage, **({"model": model} if model else {}),
                      **({"key": key} if key else {}))
        notifier.publish(f"mlops-kit: {stage} job failed"
                         + (f" for {model}" if model else ""),
                         {"event": "job_failed", "stage": stage, "model": model, "key": key,
                          "error": out["error"], "error_type": out["error_type"]})
        return out
