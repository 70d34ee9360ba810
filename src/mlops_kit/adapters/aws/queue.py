"""SQS queue with the Queue port's semantics. Redrive to the dead-letter queue is SQS's own
(the queue's RedrivePolicy, set from the topology's max_receives); we only read the DLQ."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mlops_kit.adapters.aws._errors import mapped
from mlops_kit.errors import NotFound
from mlops_kit.ports import Message

MAX_BATCH = 10  # SQS ReceiveMessage limit
MAX_WAIT = 20


def decode_body(raw: str) -> dict[str, Any]:
    """Message bodies are JSON objects; anything else (a poison message) is handed over raw."""
    try:
        body = json.loads(raw)
    except ValueError:
        return {"raw": raw}
    return body if isinstance(body, dict) else {"raw": raw}


def to_message(m: dict[str, Any]) -> Message:
    attrs = m.get("Attributes", {})
    return Message(id=m["MessageId"], body=decode_body(m.get("Body", "")),
                   receipt=m["ReceiptHandle"],
                   receive_count=int(attrs.get("ApproximateReceiveCount", 1)), attributes=attrs)


class SqsQueue:
    def __init__(self, url: str, client: Callable[[], Any], *, name: str | None = None,
                 visibility_timeout: int | None = None, dlq_url: str | None = None) -> None:
        self.url = url
        self.name = name or url.rstrip("/").rsplit("/", 1)[-1]
        self.visibility_timeout = visibility_timeout  # None: the queue's own setting
        self._client = client
        self._dlq_url = dlq_url

    @property
    def sqs(self) -> Any:
        return self._client()

    def send(self, body: dict[str, Any], *, delay_seconds: int = 0) -> str:
        with mapped(f"send to queue {self.name}"):
            resp = self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(body, default=str),
                                         DelaySeconds=max(0, min(int(delay_seconds), 900)))
        return resp["MessageId"]

    def receive(self, max_messages: int = 1, *, visibility_timeout: int | None = None,
                wait_seconds: int = 0) -> list[Message]:
        kwargs: dict[str, Any] = {
            "QueueUrl": self.url, "MaxNumberOfMessages": max(1, min(max_messages, MAX_BATCH)),
            "WaitTimeSeconds": max(0, min(wait_seconds, MAX_WAIT)),
            "AttributeNames": ["All"], "MessageAttributeNames": ["All"],
        }
        timeout = self.visibility_timeout if visibility_timeout is None else visibility_timeout
        if timeout is not None:
            kwargs["VisibilityTimeout"] = int(timeout)
        with mapped(f"receive from queue {self.name}"):
            resp = self.sqs.receive_message(**kwargs)
        return [to_message(m) for m in resp.get("Messages", [])]

    def ack(self, message: Message) -> None:
        with mapped(f"delete from queue {self.name}"):
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt)

    def release(self, message: Message, *, delay_seconds: int = 0) -> None:
        from botocore.exceptions import ClientError

        try:
            self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=message.receipt,
                                               VisibilityTimeout=max(0, int(delay_seconds)))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if "ReceiptHandle" in code or "MessageNotInflight" in code:
                raise NotFound(f"message {message.id} is no longer held by this receipt") from None
            with mapped(f"release on queue {self.name}"):
                raise

    def depth(self) -> int:
        """Every message in the queue: visible, in flight and delayed (like the local queue)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]
        with mapped(f"attributes of queue {self.name}"):
            attrs = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)
        return sum(int(attrs.get("Attributes", {}).get(n, 0)) for n in names)

    @property
    def dlq_url(self) -> str | None:
        if self._dlq_url is None:
            with mapped(f"attributes of queue {self.name}"):
                attrs = self.sqs.get_queue_attributes(QueueUrl=self.url,
                                                      AttributeNames=["RedrivePolicy"])
            policy = attrs.get("Attributes", {}).get("RedrivePolicy")
            if policy:
                arn = json.loads(policy)["deadLetterTargetArn"]
                with mapped("dead-letter queue"):
                    self._dlq_url = self.sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])[
                        "QueueUrl"]
        return self._dlq_url

    def dead_letters(self) -> list[Message]:
        """Peek at the DLQ without consuming it (visibility 0 leaves every message visible)."""
        url = self.dlq_url
        if url is None:
            return []
        seen: dict[str, Message] = {}
        for _ in range(100):
            with mapped(f"receive from the DLQ of {self.name}"):
                resp = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=MAX_BATCH,
                                                VisibilityTimeout=0, AttributeNames=["All"])
            batch = [to_message(m) for m in resp.get("Messages", [])]
            new = [m for m in batch if m.id not in seen]
            if not new:
                break
            seen.update((m.id, m) for m in new)
        return list(seen.values())
