"""train: SQS training jobs -> core.training.usecase.train_job (train, export ONNX, parity gate, register,
promote). Idempotent on dataset sha256 + spec hash; artifacts first, registry entry last.
Failures are reported per message (batchItemFailures) and end in the DLQ after the receive
count."""

from __future__ import annotations

import sys
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

import _wiring
from mlops_kit.core.training.usecase import train_job

logger = Logger(service="mlops-kit-train", stream=sys.stderr)  # stdout stays clean for --json
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> dict[str, Any]:
    try:
        job = record.json_body
        if not isinstance(job, dict) or "model" not in job or "dataset_key" not in job:
            raise ValueError("message body is not a training job")
        result = train_job(_wiring.backend().ctx, job)
    except Exception:
        logger.exception("training job failed", extra={"message_id": record.message_id})
        raise
    logger.info("training job done", extra={"result": {k: result.get(k) for k in (
        "status", "model", "version", "promoted", "reasons")}})
    return result


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)
