"""Captured requests of a time window, read hour partition by hour partition (bounded
memory): the monitor's input."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta

from mlops_kit.core import layout

CHUNK_ROWS = 1000


# -- captures -----------------------------------------------------------------------------
def _hour_prefixes(model: str, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
    out, t = [], start.replace(minute=0, second=0, microsecond=0)
    while t <= end:
        out.append((layout.capture_hour_prefix(model, t), t))
        t += timedelta(hours=1)
    return out


def iter_captures(ctx, model: str, start: datetime, end: datetime,
                  stats: dict[str, int] | None = None) -> Iterator[dict]:
    """Captured rows with start <= at <= end, listing only the hour partitions of the window.
    Timestamps are parsed only in the two partial hours at the window's edges."""
    for prefix, hour in _hour_prefixes(model, start, end):
        inside = hour >= start and hour + timedelta(hours=1) <= end
        for info in ctx.store.list(prefix):
            if stats is not None:
                stats["objects"] = stats.get("objects", 0) + 1
                stats["bytes"] = stats.get("bytes", 0) + info.size
            with ctx.store.open(info.key) as f:
                for line in io.TextIOWrapper(f, encoding="utf-8"):
                    if not line.strip():
                        continue
                    row = json.loads(line)
                    if not inside:
                        try:
                            at = datetime.fromisoformat(row["at"])
                        except (KeyError, TypeError, ValueError):
                            continue
                        if at < start or at > end:
                            continue
                    yield row


def chunks(rows: Iterator[dict], size: int = CHUNK_ROWS) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
