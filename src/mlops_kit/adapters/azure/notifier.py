"""Alerts on Azure go to a Storage Queue (`alerts` in the topology).

Why a queue and not an Event Grid custom topic: the queue needs no other service than the
storage account the kit already has (one managed identity role: Storage Queue Data Message
Sender), it keeps every alert until someone reads it (SNS-like fan-out can be added by a
Logic App or a Function on the queue, and an Azure Monitor alert can fire on its length), and
it is testable end to end on Azurite, which emulates no Event Grid. An Event Grid topic would
give push fan-out but an untestable path and a key or another role to manage.

Each alert is one JSON message {"subject", "message", "at"}, base64 like the job queues,
kept until read (time_to_live=-1): the queue is for programs. For people, each alert is also one
log record, `MLOPSKIT_ALERT <the same JSON>`: in a function app the Functions host sends it to
Application Insights (`traces`), where a scheduled query rule (infra/azure_stack/monitoring.py)
mails the action group."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mlops_kit.adapters.azure._errors import mapped
from mlops_kit.adapters.azure.queue import MAX_BATCH, decode_body, encode_body
from mlops_kit.errors import StorageError

# The marker the alert rule's query looks for (infra/azure_stack/monitoring.py ALERT_MARKER).
ALERT_MARKER = "MLOPSKIT_ALERT "
LOG_LIMIT = 30_000  # characters of JSON per log record (App Insights keeps 32 KiB of a message)
_log = logging.getLogger("mlops_kit.alerts")


class QueueNotifier:
    def __init__(self, queue: str, service: Callable[[], Any]) -> None:
        self.queue = queue
        self._service = service

    @property
    def client(self) -> Any:
        return self._service().get_queue_client(self.queue)

    def publish(self, subject: str, message: dict[str, Any]) -> None:
        body = {"subject": subject[:256], "message": message, "at": datetime.now(UTC).isoformat()}
        try:
            text = encode_body(body)
        except StorageError:  # over the 64 KiB message limit: keep the head of it
            body["message"] = {"truncated": json.dumps(message, default=str)[:40_000]}
            text = encode_body(body)
        # logged first: people hear of it even when the queue is what failed
        _log.warning("%s%s", ALERT_MARKER, json.dumps(body, default=str)[:LOG_LIMIT])
        with mapped("publish notification"):
            self.client.send_message(text, time_to_live=-1)

    def messages(self) -> list[dict[str, Any]]:
        """The oldest unread alerts (at most 32), without consuming them."""
        with mapped(f"peek at {self.queue}"):
            return [decode_body(m.content) for m in self.client.peek_messages(max_messages=MAX_BATCH)]
