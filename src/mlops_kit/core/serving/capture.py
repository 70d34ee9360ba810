"""Capture of served requests for monitoring, with bounded overhead on the request path:
rows are buffered in memory and written as one JSON-lines object per flush (by size or age),
partitioned by model and hour so a monitoring window lists only the hours it needs."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from mlops_kit.core.features import MISSING_CATEGORY
from mlops_kit.core.layout import capture_hour_prefix
from mlops_kit.ports import Clock, ObjectStore


def row_id(request_id: str, index: int, batch_size: int) -> str:
    """The id late labels join on: the request id, or request_id#index inside a batch."""
    return request_id if batch_size == 1 else f"{request_id}#{index}"


@dataclass(frozen=True)
class CapturedRequest:
    """One served request, kept as the arrays it was scored with. Expanding it into JSON rows
    happens at flush time, off the request path (a 1,000-record batch costs ~µs to capture)."""

    model: str
    request_id: str
    at: datetime
    version: int
    role: str  # served | shadow
    latency_ms: float
    names: tuple[str, ...]
    feed: dict[str, np.ndarray]
    predictions: list
    probabilities: list | None

    @property
    def size(self) -> int:
        return len(self.predictions)

    def rows(self) -> list[dict[str, Any]]:
        n = self.size
        columns = []
        for name in self.names:
            arr = self.feed[name]
            col = arr.ravel().tolist()
            if arr.dtype.kind == "O":
                columns.append([None if v == MISSING_CATEGORY else v for v in col])
            else:
                columns.append([None if v != v else v for v in col])
        at = self.at.isoformat()
        latency = round(self.latency_ms, 3)
        out = []
        for i, values in enumerate(zip(*columns, strict=True)):
            row = {
                "id": row_id(self.request_id, i, n),
                "request_id": self.request_id,
                "at": at,
                "model": self.model,
                "version": self.version,
                "role": self.role,
                "latency_ms": latency,
                "features": dict(zip(self.names, values, strict=True)),
                "prediction": self.predictions[i],
            }
            if self.probabilities is not None:
                row["probabilities"] = self.probabilities[i]
            out.append(row)
        return out


class CaptureBuffer:
    """Buffers captured requests; a background flusher (local server) or the end of an
    invocation (serve function) writes them when `due()`. Requests only append: the request
    path never writes to the store unless the buffer is far past its size (backpressure)."""

    def __init__(
        self, store: ObjectStore, clock: Clock, *, max_rows: int = 2000, max_age_s: float = 10.0
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._pending: list[CapturedRequest] = []
        self._count = 0
        self._first_at: datetime | None = None
        self._lock = threading.Lock()
        self.written_objects = 0

    def add_request(self, request: CapturedRequest) -> None:
        with self._lock:
            self._pending.append(request)
            self._count += request.size
            if self._first_at is None:
                self._first_at = request.at
            overfull = self._count >= 4 * self.max_rows
        if overfull:  # nobody is flushing: bound memory rather than grow without limit
            self.flush()

    def due(self) -> bool:
        with self._lock:
            if not self._count:
                return False
            age = (self.clock.now() - self._first_at).total_seconds() if self._first_at else 0
            return self._count >= self.max_rows or age >= self.max_age_s

    def flush(self) -> int:
        with self._lock:
            pending, self._pending, self._count, self._first_at = self._pending, [], 0, None
        by_model: dict[str, list[str]] = {}
        for req in pending:
            lines = by_model.setdefault(req.model, [])
            lines.extend(json.dumps(r, separators=(",", ":"), default=str) for r in req.rows())
        written = 0
        now = self.clock.now()
        for model, lines in by_model.items():
            if not lines:
                continue
            stamp = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
            key = f"{capture_hour_prefix(model, now)}{stamp}.jsonl"
            self.store.put(key, ("\n".join(lines) + "\n").encode(),
                           content_type="application/x-ndjson")
            written += len(lines)
            self.written_objects += 1
        return written
