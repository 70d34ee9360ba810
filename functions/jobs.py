"""jobs: Batch Job State Change events (EventBridge -> SQS) -> core.training.engines.on_job_state.

A training job that ended without completing its version (out of memory, timeout, retries
exhausted, no image) leaves the version `pending`; this marks it `failed` with the engine's
reason and notifies. Events of other jobs, and intermediate states, are acknowledged and
ignored. Light: no scikit-learn."""

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
from mlops_kit.adapters.aws.batch import parse_body
from mlops_kit.core.training.engines import on_job_state

logger = Logger(service="mlops-kit-jobs", stream=sys.stderr)  # stdout stays clean for --json
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> dict[str, Any]:
    state = parse_body(record.body)
    if state is None:
        logger.warning("not a Batch job state change", extra={"message_id": record.message_id})
        return {"status": "ignored"}
    try:
        result = on_job_state(_wiring.backend().ctx, state)
    except Exception:
        logger.exception("job state change failed", extra={"message_id": record.message_id})
        raise
    logger.info("job state change", extra={"result": result})
    return result


def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)
