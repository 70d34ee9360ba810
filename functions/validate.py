"""validate: an SQS batch of S3 notifications -> core.router.on_object_created per object, through
the shell every runtime shares (mlops_kit.handlers).

S3 test events are ignored; keys are URL-decoded; the core is idempotent per key + etag
(delivery is at-least-once). A final failure (no spec, a .json upload, a poison message, a bug)
is an outcome: quarantined or reported, notified and acknowledged. Only a retryable failure is
reported in batchItemFailures, so only it is redelivered; after the queue's receive count SQS
moves it to the dead-letter queue, whose depth alarm notifies."""

from __future__ import annotations

import sys
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

import _wiring
from mlops_kit.errors import describe
from mlops_kit.handlers.messages import validate_message

logger = Logger(service="mlops-kit-validate", stream=sys.stderr)  # stdout stays clean for --json
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> list[dict[str, Any]]:
    """One SQS message: the shared shell (mlops_kit.handlers.messages) reads the S3 notification
    (or a scoring chunk), runs each object to its outcome and raises only a retryable failure
    (reported in batchItemFailures, so only it is redelivered)."""
    ctx = _wiring.backend().ctx
    try:
        results = validate_message(ctx, record.body)
    except Exception as exc:  # only retryable failures propagate: batchItemFailures
        logger.warning("message failed, will be retried",
                       extra={"message_id": record.message_id, "error": describe(exc)})
        raise
    for r in results:
        logger.info("object processed", extra={"result": {k: r.get(k) for k in (
            "status", "model", "dataset_key", "key", "rows", "quarantine_key", "duplicate",
            "error", "chunk")}})
    return results


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)
