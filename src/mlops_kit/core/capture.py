"""Capture of served requests for monitoring, with bounded overhead on the request path:
rows are buffered in memory and written as one JSON-lines object per flush (by size or age),
partitioned by model and hour so a monitoring window lists only the hours it needs."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime
from typing import Any

from mlops_kit.core.spec import check_name
from mlops_kit.ports import Clock, ObjectStore

CAPTURE_PREFIX = "captures/"


def capture_hour_prefix(model: str, at: datetime) -> str:
    return f"{CAPTURE_PREFIX}{check_name(model)}/{at:%Y-%m-%d}/{at:%H}/"


def row_id(request_id: str, index: int, batch_size: int) -> str:
    """The id late labels join on: the request id, or request_id#index inside a batch."""
    return request_id if batch_size == 1 else f"{request_id}#{index}"


class CaptureBuffer:
    def __init__(
        self, store: ObjectStore, clock: Clock, *, max_rows: int = 2000, max_age_s: float = 10.0
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._count = 0
        self._first_at: datetime | None = None
        self._lock = threading.Lock()
        self.written_objects = 0

    def add(self, model: str, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._rows.setdefault(model, []).extend(rows)
            self._count += len(rows)
            if self._first_at is None:
                self._first_at = self.clock.now()
        if self._count >= self.max_rows:
            self.flush()

    def due(self) -> bool:
        with self._lock:
            if not self._count:
                return False
            age = (self.clock.now() - self._first_at).total_seconds() if self._first_at else 0
            return self._count >= self.max_rows or age >= self.max_age_s

    def flush(self) -> int:
        with self._lock:
            batches, self._rows, self._count, self._first_at = self._rows, {}, 0, None
        written = 0
        now = self.clock.now()
        for model, rows in batches.items():
            if not rows:
                continue
            body = "\n".join(json.dumps(r, separators=(",", ":"), default=str) for r in rows)
            key = f"{capture_hour_prefix(model, now)}{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.jsonl"
            self.store.put(key, (body + "\n").encode(), content_type="application/x-ndjson")
            written += len(rows)
            self.written_objects += 1
        return written
