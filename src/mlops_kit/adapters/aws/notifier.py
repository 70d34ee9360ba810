"""SNS notifier: one topic for alerts (drift, quarantine, promotion, integrity)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mlops_kit.adapters.aws._errors import mapped


def sns_subject(subject: str) -> str:
    """SNS subjects: ASCII, no control characters, at most 100 characters, not empty."""
    clean = "".join(c if 32 <= ord(c) < 127 else " " if ord(c) < 32 else "?"
                    for c in subject).strip()
    return (clean or "mlops-kit")[:100]


class SnsNotifier:
    def __init__(self, topic_arn: str, client: Callable[[], Any]) -> None:
        self.topic_arn = topic_arn
        self._client = client

    def publish(self, subject: str, message: dict[str, Any]) -> None:
        with mapped("publish notification"):
            self._client().publish(TopicArn=self.topic_arn, Subject=sns_subject(subject),
                                   Message=json.dumps(message, default=str))
