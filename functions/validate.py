"""validate: an SQS batch of S3 notifications -> core.pipeline.on_object_created per object.

S3 test events are ignored; keys are URL-decoded; the core is idempotent per key + etag
(delivery is at-least-once). A final failure (no spec, a .json upload, a poison message, a bug)
is an outcome: quarantined or reported, notified and acknowledged. Only a retryable failure is
reported in batchItemFailures, so only it is redelivered; after the queue's receive count SQS
moves it to the dead-letter queue, whose depth alarm notifies."""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

import _wiring
from mlops_kit.core.outcomes import run_job
from mlops_kit.core.router import is_score_chunk, on_object_created, on_score_chunk
from mlops_kit.errors import ValidationError, describe

logger = Logger(service="mlops-kit-validate", stream=sys.stderr)  # stdout stays clean for --json
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def created_objects(body: str) -> list[dict[str, Any]]:
    """The objects an S3 notification (the SQS message body) announces."""
    try:
        event = json.loads(body)
    except ValueError:
        event = None
    if isinstance(event, dict) and event.get("Event") == "s3:TestEvent":
        return []
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        # a poison message: final (no retry can parse it), logged and notified with an excerpt
        raise ValidationError(f"message body is not an S3 event notification: {body[:200]!r}",
                              field="body")
    return [
        {"key": unquote_plus(r["s3"]["object"]["key"]), "etag": r["s3"]["object"].get("eTag"),
         "version_id": r["s3"]["object"].get("versionId")}
        for r in event["Records"] if str(r.get("eventName", "")).startswith("ObjectCreated")
    ]


def record_handler(record: SQSRecord) -> list[dict[str, Any]]:
    ctx = _wiring.backend().ctx

    def one(o: dict[str, Any]) -> dict[str, Any]:
        return on_object_created(ctx, o["key"], o["etag"], o["version_id"])

    def every(body: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            message = json.loads(body["raw"])
        except ValueError:
            message = None
        if is_score_chunk(message):  # one chunk of a fanned-out scoring job (fanout.py)
            chunk = message["score_chunk"]
            about = chunk if isinstance(chunk, dict) else {}
            return [run_job(ctx.notifier, "validate", lambda _: on_score_chunk(ctx, message),
                            {"model": about.get("model"), "key": about.get("key")})]
        return [run_job(ctx.notifier, "validate", one, o) for o in created_objects(body["raw"])]

    try:  # a body that is no S3 notification is a final failure too (poison: never retried)
        out = run_job(ctx.notifier, "validate", every, {"raw": record.body})
    except Exception as exc:  # only retryable failures propagate: batchItemFailures
        logger.warning("message failed, will be retried",
                       extra={"message_id": record.message_id, "error": describe(exc)})
        raise
    results = out if isinstance(out, list) else [out]
    for r in results:
        logger.info("object processed", extra={"result": {k: r.get(k) for k in (
            "status", "model", "dataset_key", "key", "rows", "quarantine_key", "duplicate",
            "error", "chunk")}})
    return results


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)
