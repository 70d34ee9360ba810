"""The local runtime: wires uploads and queues the way the cloud does (object created ->
validate queue -> validate; pass -> train queue -> train), with SQS semantics from the
durable SQLite queue. A final failure (bad data, spec or model; a bug) ends the job at once with
its outcome and the message is acknowledged; only a retryable one (transient infrastructure) is
released and retried, then dead-lettered (which notifies: see adapters/local/factory)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_kit.bootstrap import Backend
from mlops_kit.core import layout
from mlops_kit.core.outcomes import run_job
from mlops_kit.core.router import is_score_chunk, on_object_created, on_score_chunk
from mlops_kit.core.training.engines import route_training
from mlops_kit.errors import describe
from mlops_kit.local.training_jobs import jobs_running, settle_jobs
from mlops_kit.ports import Message, Notifier, Queue

log = logging.getLogger("mlops_kit.local.worker")


def upload(backend: Backend, path: str | Path, model: str, *, name: str | None = None) -> dict:
    """Put a dataset under datasets/<model>/ and emit the object-created event."""
    key = layout.dataset_key(model, name or Path(path).name)
    info = backend.ctx.store.put_file(key, str(path))
    backend.validate_queue.send({"key": key, "etag": info.etag, "version_id": info.version_id})
    return {"key": key, "etag": info.etag, "size": info.size}


def put_object(backend: Backend, key: str, data: bytes | Path) -> dict:
    """Any object write that the cloud would notify about (datasets/, labels/, scoring/).
    `data`: the bytes, or a file streamed to the store (a big file is never held in memory)."""
    info = backend.ctx.store.put_file(key, str(data)) if isinstance(data, Path) else \
        backend.ctx.store.put(key, data)
    if layout.parse_key(key).kind in ("dataset", "labels", "scoring"):
        backend.validate_queue.send({"key": key, "etag": info.etag, "version_id": info.version_id})
    return {"key": key, "etag": info.etag, "size": info.size}


def _process(notifier: Notifier, queue: Queue, msg: Message, stage: str, fn) -> dict[str, Any]:
    try:
        result = run_job(notifier, stage, fn, msg.body)  # a final failure is an outcome
    except Exception as exc:  # noqa: BLE001 - only retryable failures get here
        log.warning("%s message %s failed, will retry (receive %d): %s", queue.name, msg.id,
                    msg.receive_count, describe(exc))
        queue.release(msg)
        # an attempt, not an outcome: the message comes back (or reaches the DLQ, which notifies)
        return {"status": "failed", "retryable": True, "final": False, "error": describe(exc),
                "error_type": type(exc).__name__, "message_id": msg.id,
                "receive_count": msg.receive_count}
    queue.ack(msg)
    return result


def run_once(backend: Backend, *, max_messages: int = 10,
             progress: Callable[[str, dict[str, Any]], None] | None = None,
             wait_jobs: bool = True) -> list[dict[str, Any]]:
    """Drain both queues until empty (or only in-flight / delayed messages remain); with
    wait_jobs, also until the training jobs running in separate processes have ended (the
    queues keep being served meanwhile: a big training never blocks validation).
    `progress(event, info)` hears "start" and "done" for each message (the CLI's display)."""
    ctx = backend.ctx
    results: list[dict[str, Any]] = []

    def process(queue: Queue, msg: Message, stage: str, fn) -> None:
        if progress:
            progress("start", {"queue": queue.name, "message_id": msg.id, "body": msg.body})
        results.append(_process(ctx.notifier, queue, msg, stage, fn))
        if progress:
            progress("done", {"queue": queue.name, "message_id": msg.id, "result": results[-1]})

    while True:
        settled = settle_jobs(backend)  # large trainings: local/training_jobs.py
        results += settled
        progressed = bool(settled)
        for msg in backend.validate_queue.receive(max_messages):
            progressed = True
            process(backend.validate_queue, msg, "validate", lambda b: on_score_chunk(ctx, b)
                    if is_score_chunk(b) else
                    on_object_created(ctx, b["key"], b.get("etag"), b.get("version_id")))
        for msg in ctx.train_queue.receive(1):
            progressed = True
            process(ctx.train_queue, msg, "train", lambda b: route_training(ctx, b))
        if not progressed:
            if wait_jobs and jobs_running(backend):
                time.sleep(0.2)
                continue
            return results


def announcer(backend: Backend):
    """What S3's notification does in the cloud: a dataset written by the core (a retrain)
    is announced on the validate queue."""

    def announce(key: str, info) -> None:
        backend.validate_queue.send({"key": key, "etag": info.etag, "version_id": info.version_id})

    return announce
