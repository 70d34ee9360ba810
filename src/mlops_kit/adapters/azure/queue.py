"""Azure Storage Queue with the Queue port's semantics.

- Visibility timeout per receive (Azure has no queue-level default; ours comes from the
  topology); `receive_count` is the service's `dequeue_count`.
- Poison queue: Azure Storage has no dead-letter queue (the Functions host moves a message to
  `<queue>-poison` after maxDequeueCount). This adapter does the same move itself: a message
  received more than `max_receives` times is copied to `<queue>-poison` and deleted here, before
  anyone sees it again (copy first, so a crash duplicates it rather than losing it).
- Long polling is emulated: short sleeps (50 ms doubling to 1 s) until `wait_seconds` (at most
  20, as SQS) have passed.
- Bodies are JSON, sent base64-encoded (what the Functions queue trigger expects by default);
  plain-JSON bodies (e.g. Event Grid deliveries) are read as well.
- Messages never expire (time_to_live=-1): a job is processed or ends in the poison queue,
  never silently dropped after Azure's default 7 days.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Any

from mlops_kit.adapters.azure._errors import mapped
from mlops_kit.errors import NotFound, StorageError
from mlops_kit.ports import Message

MAX_BATCH = 32  # Get Messages limit
MAX_WAIT = 20  # like SQS's longest long poll
MAX_DELAY = 7 * 24 * 3600  # Azure's longest initial invisibility
MAX_MESSAGE = 64 * 1024  # Azure's message size limit (after base64)
POISON_SUFFIX = "-poison"


def encode_body(body: dict[str, Any]) -> str:
    text = base64.b64encode(json.dumps(body, default=str).encode()).decode()
    if len(text) > MAX_MESSAGE:
        raise StorageError(f"a queue message holds at most {MAX_MESSAGE} bytes "
                              f"(base64); this one is {len(text)}", field="body")
    return text


def decode_body(raw: str) -> dict[str, Any]:
    """JSON objects, base64-encoded or plain; anything else (a poison message) is handed over raw."""
    for candidate in (raw, _b64(raw)):
        if candidate is None:
            continue
        try:
            body = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(body, dict):
            return body
    return {"raw": raw}


def _b64(raw: str) -> str | None:
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def to_message(m: Any) -> Message:
    return Message(id=m.id, body=decode_body(m.content or ""), receipt=m.pop_receipt or "",
                   receive_count=int(m.dequeue_count or 0),
                   attributes={"inserted_on": m.inserted_on, "dequeue_count": m.dequeue_count})


class StorageQueue:
    def __init__(self, name: str, service: Callable[[], Any], *, visibility_timeout: int = 30,
                 max_receives: int = 3, poison_name: str | None = None) -> None:
        self.name = name
        self.poison_name = poison_name or f"{name}{POISON_SUFFIX}"
        self.visibility_timeout = visibility_timeout
        self.max_receives = max_receives
        self._service = service

    @property
    def client(self) -> Any:
        return self._service().get_queue_client(self.name)

    @property
    def poison(self) -> Any:
        return self._service().get_queue_client(self.poison_name)

    def send(self, body: dict[str, Any], *, delay_seconds: int = 0) -> str:
        text = encode_body(body)
        with mapped(f"send to queue {self.name}"):
            sent = self.client.send_message(text, time_to_live=-1,
                                            visibility_timeout=max(0, min(int(delay_seconds),
                                                                          MAX_DELAY)))
        return sent.id

    def receive(self, max_messages: int = 1, *, visibility_timeout: int | None = None,
                wait_seconds: int = 0) -> list[Message]:
        timeout = self.visibility_timeout if visibility_timeout is None else visibility_timeout
        deadline = time.monotonic() + max(0, min(wait_seconds, MAX_WAIT))
        pause = 0.05
        while True:
            got = self._receive_once(max(1, min(max_messages, MAX_BATCH)), max(1, int(timeout)))
            left = deadline - time.monotonic()
            if got or left <= 0:
                return got
            time.sleep(min(pause, left))
            pause = min(pause * 2, 1.0)

    def _receive_once(self, count: int, timeout: int) -> list[Message]:
        out: list[Message] = []
        while len(out) < count:
            want = count - len(out)
            with mapped(f"receive from queue {self.name}"):
                batch = list(self.client.receive_messages(
                    messages_per_page=want, max_messages=want, visibility_timeout=timeout))
            moved = 0
            for m in batch:
                if int(m.dequeue_count or 0) > self.max_receives:
                    self._to_poison(m)
                    moved += 1
                else:
                    out.append(to_message(m))
            if not moved:  # the queue had no more (or we got all we asked for)
                break
        return out

    def _to_poison(self, m: Any) -> None:
        with mapped(f"move a message to {self.poison_name}"):
            self.poison.send_message(m.content, time_to_live=-1)
        try:
            with mapped(f"delete from queue {self.name}"):
                self.client.delete_message(m.id, m.pop_receipt)
        except NotFound:
            pass  # already gone: the copy in the poison queue is what counts

    def ack(self, message: Message) -> None:
        """Delete a processed message. An outdated receipt is ignored (as SQS does): the
        message was redelivered and whoever holds it now decides."""
        try:
            with mapped(f"delete from queue {self.name}"):
                self.client.delete_message(message.id, message.receipt)
        except NotFound:
            pass

    def _update(self, message: Message, seconds: int, what: str) -> None:
        try:
            with mapped(f"{what} on queue {self.name}"):
                updated = self.client.update_message(message.id, message.receipt,
                                                     visibility_timeout=max(0, int(seconds)))
        except NotFound:
            raise NotFound(f"message {message.id} is no longer held by this receipt") from None
        message.receipt = updated.pop_receipt  # Azure issues a new receipt on every update

    def release(self, message: Message, *, delay_seconds: int = 0) -> None:
        self._update(message, min(delay_seconds, MAX_DELAY), "release")

    def extend(self, message: Message, seconds: int) -> None:
        """Keep holding a message for `seconds` more (a long job renews its lease)."""
        self._update(message, min(seconds, MAX_DELAY), "extend")

    def depth(self) -> int:
        """Every message in the queue, visible or not (Azure's approximate count)."""
        with mapped(f"properties of queue {self.name}"):
            return int(self.client.get_queue_properties().approximate_message_count or 0)

    def dead_letters(self) -> list[Message]:
        """The poison queue's messages, without consuming them. Peek shows at most 32; past
        that, pages are received with a 1 s visibility (they reappear at once)."""
        with mapped(f"peek at {self.poison_name}"):
            peeked = list(self.poison.peek_messages(max_messages=MAX_BATCH))
        if len(peeked) < MAX_BATCH:
            return [_dead(m) for m in peeked]
        seen: dict[str, Message] = {}
        for _ in range(1000):
            with mapped(f"receive from {self.poison_name}"):
                batch = list(self.poison.receive_messages(
                    messages_per_page=MAX_BATCH, max_messages=MAX_BATCH, visibility_timeout=1))
            new = [m for m in batch if m.id not in seen]
            if not new:
                break
            seen.update((m.id, _dead(m)) for m in new)
        return list(seen.values())


def _dead(m: Any) -> Message:
    msg = to_message(m)
    msg.receipt = ""  # peeked or briefly borrowed: not held
    return msg
