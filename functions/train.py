"""train: SQS training jobs -> core.training.engines.route_training, through mlops_kit.handlers
(the shell every runtime shares): a small job trains here
(core.training.usecase.train_job: train, export ONNX, parity gate, register, promote); a large
one is submitted to AWS Batch (docs/training-engines.md). Idempotent on dataset sha256 + spec
hash; artifacts first, registry entry last.
A final failure (bad params, data, a bug) leaves the version `failed`, notifies and is
acknowledged; only retryable failures are reported in batchItemFailures and end in the DLQ
(whose depth alarm notifies) after the receive count."""

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
from mlops_kit.handlers.messages import train_message

logger = Logger(service="mlops-kit-train", stream=sys.stderr)  # stdout stays clean for --json
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> dict[str, Any]:
    """One training job through the shared shell (mlops_kit.handlers.messages.train_message):
    routed to this function or the batch engine; a poison body is a final failure (notified
    and acknowledged, never retried); only a retryable failure raises (batchItemFailures)."""
    ctx = _wiring.backend().ctx
    try:
        result = train_message(ctx, record.body)
    except Exception as exc:  # only retryable failures propagate: batchItemFailures
        logger.warning("training job failed, will be retried",
                       extra={"message_id": record.message_id, "error": describe(exc)})
        raise
    logger.info("training job done", extra={"result": {k: result.get(k) for k in (
        "status", "model", "version", "promoted", "reasons", "error", "engine", "job_id")}})
    return result


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)
