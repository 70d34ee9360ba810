"""The Lambda SQS event source: batches, batchItemFailures, visibility timeout, receive count,
DLQ redrive, delivered to the real handlers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mlops_kit.emulate.aws_events import sqs_record

log = logging.getLogger("mlops_kit.emulate")


class SqsPump:
    """The SQS event source mapping: receive a batch, invoke, delete what succeeded. Failed
    messages stay in the queue and come back after `retry_after` seconds (the visibility
    timeout; None keeps the queue's own); SQS redrives them to the DLQ after maxReceiveCount.

    `sqs` receives and deletes (as the mapping does, with the consumer's role); `control`
    (default: the same client) shortens a failed message's visibility, which the real mapping
    never does, so it is the emulator's own call, not the role's."""

    def __init__(self, sqs: Any, url: str, arn: str, handler: Callable, *, batch_size: int,
                 region: str, context: Callable[[], Any], retry_after: int | None = None,
                 control: Any = None) -> None:
        self.sqs, self.url, self.arn, self.handler = sqs, url, arn, handler
        self.batch_size, self.region, self.context = batch_size, region, context
        self.retry_after = retry_after
        self.control = control or sqs
        self.delivered = self.failed = 0

    def poll_once(self, wait_seconds: int = 0) -> int:
        msgs = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=min(self.batch_size, 10),
            WaitTimeSeconds=wait_seconds, AttributeNames=["All"],
            MessageAttributeNames=["All"]).get("Messages", [])
        if not msgs:
            return 0
        event = {"Records": [sqs_record(m, self.arn, self.region) for m in msgs]}
        try:
            out = self.handler(event, self.context())
            failed = {f["itemIdentifier"] for f in (out or {}).get("batchItemFailures", [])}
        except Exception:  # noqa: BLE001 - a crashed invocation fails the whole batch
            log.exception("invocation on %s failed", self.url.rsplit("/", 1)[-1])
            failed = {m["MessageId"] for m in msgs}
        for m in msgs:
            if m["MessageId"] in failed:
                self.failed += 1
                if self.retry_after is not None:
                    self.control.change_message_visibility(QueueUrl=self.url,
                                                       ReceiptHandle=m["ReceiptHandle"],
                                                       VisibilityTimeout=self.retry_after)
            else:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
                self.delivered += 1
        return len(msgs)

    def drain(self, *, max_rounds: int = 100) -> int:
        total = 0
        for _ in range(max_rounds):
            n = self.poll_once()
            if not n:
                break
            total += n
        return total
