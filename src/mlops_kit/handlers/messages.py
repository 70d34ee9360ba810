"""A queue message's worth of work, with the retry semantics (DESIGN: failures
are retryable or final).

- final (the data, the spec, the model, a malformed message): logged, notified, and returned as
  a `failed` outcome, so the shell returns normally and the platform deletes the message;
- retryable (a transient infrastructure fault): raised, so the platform makes the message
  visible again and, after the queue's max receives, moves it to `<queue>-poison` (Azure) or
  the DLQ (AWS).

The classification is errors.is_retryable and the outcome core.outcomes.run_job's; this module
adds what a message is (blob_events.created_objects) and the per-object loop. Every runtime uses
it: the Lambda functions, the Azure Functions app and the emulators.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection
from typing import Any, TypeVar, cast

from mlops_kit.core.context import Context
from mlops_kit.core.outcomes import FAILED, run_job
from mlops_kit.core.router import is_score_chunk, on_object_created, on_score_chunk
from mlops_kit.errors import ValidationError, describe, is_retryable
from mlops_kit.handlers.blob_events import CreatedObject, created_objects
from mlops_kit.ports import Notifier

log = logging.getLogger("mlops_kit.handlers")
T = TypeVar("T")
__all__ = ["FAILED", "is_retryable", "settle", "train_message", "validate_message"]


def settle(notifier: Notifier, stage: str, fn: Callable[[], T], **about: Any) -> T | dict[str, Any]:
    """core.outcomes.run_job for a call: a final failure becomes a `failed` outcome (logged,
    notified with `about`: model, key); a retryable one (errors.is_retryable) propagates."""
    body = {k: v for k, v in about.items() if v is not None}
    try:
        return cast("T | dict[str, Any]", run_job(notifier, stage, lambda _: cast(dict, fn()), body))
    except Exception as exc:  # only a retryable failure gets here
        log.warning("%s failed, will be retried: %s %s", stage, describe(exc), body)
        raise


def validate_message(ctx: Context, body: Any, *, containers: Collection[str] | None = None
                     ) -> list[dict[str, Any]]:
    """Every object the message announces -> on_object_created (idempotent per key + etag, so
    a redelivered message repeats nothing that was done). One outcome per object; a message
    that cannot be read is one `failed` outcome. A chunk of a fanned-out scoring job
    ({"score_chunk": ...}, core/scoring/fanout.py) is one outcome too."""
    try:
        peek = _load(body)
    except ValidationError:
        peek = None
    if is_score_chunk(peek):
        chunk = peek["score_chunk"]
        about = chunk if isinstance(chunk, dict) else {}
        return [settle(ctx.notifier, "validate", lambda: on_score_chunk(ctx, peek),
                       key=about.get("key"), model=about.get("model"))]
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
    # a job, or one trial of an experiment ({"type": "trial", ...}): both name these two
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) \
            or not isinstance(body.get("dataset_key"), str):
        raise ValidationError("message: not a training job (model, dataset_key)",
                              field="message")
    return body


def train_message(ctx: Context, body: Any) -> dict[str, Any]:
    """A training job -> route_training: trained here, or handed to the batch engine when the
    backend has one and the job is large (idempotent on dataset sha256 + spec hash)."""

    def run() -> dict[str, Any]:
        job = _job(body)
        from mlops_kit.core.training.engines import route_training  # sklearn: only here

        return route_training(ctx, job)

    try:
        peek = _load(body)
    except ValidationError:
        peek = None
    about = {"model": peek.get("model"), "key": peek.get("dataset_key")} \
        if isinstance(peek, dict) else {}
    return settle(ctx.notifier, "train", run, **about)
