"""Captured requests of a time window, read hour partition by hour partition as columns
(core.capture.codec): the monitor's input. Bounded memory: one capture object (one flush of
the serve side, ~2,000 rows) or CHUNK_ROWS legacy JSON lines at a time."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson

from mlops_kit.core import layout
from mlops_kit.core.capture import codec
from mlops_kit.core.capture.chunks import CaptureChunk, chunk_from_rows
from mlops_kit.core.capture.codec import CaptureFormatError
from mlops_kit.core.context import Context

CHUNK_ROWS = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
log = logging.getLogger("mlops_kit.monitoring")


def _hour_prefixes(model: str, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
    out, t = [], start.replace(minute=0, second=0, microsecond=0)
    while t <= end:
        out.append((layout.capture_hour_prefix(model, t), t))
        t += timedelta(hours=1)
    return out


def _us(at: datetime) -> int:
    return ((at if at.tzinfo else at.replace(tzinfo=UTC)) - _EPOCH) // timedelta(microseconds=1)


def iter_capture_chunks(ctx: Context, model: str, start: datetime, end: datetime,
                        stats: dict[str, int] | None = None) -> Iterator[CaptureChunk]:
    """Captured rows with start <= at <= end, as column chunks, listing only the hour
    partitions of the window. Row times are compared only in the two partial hours at the
    window's edges. Columnar objects (.npz) and legacy JSON lines (.jsonl) both read."""
    stats = {} if stats is None else stats
    lo, hi = _us(start), _us(end)
    for prefix, hour in _hour_prefixes(model, start, end):
        inside = hour >= start and hour + timedelta(hours=1) <= end
        for info in ctx.store.list(prefix):
            if info.key.endswith(codec.SUFFIX):
                chunks = _npz_chunks(ctx, info.key, stats)
            elif info.key.endswith(codec.LEGACY_SUFFIX):
                chunks = _jsonl_chunks(ctx, info.key, inside)
            else:
                continue
            stats["objects"] = stats.get("objects", 0) + 1
            stats["bytes"] = stats.get("bytes", 0) + info.size
            for chunk in chunks:
                if not inside:
                    chunk = chunk.select((chunk.at_us >= lo) & (chunk.at_us <= hi))
                if chunk.n:
                    yield chunk


def _npz_chunks(ctx: Context, key: str, stats: dict[str, int]) -> Iterator[CaptureChunk]:
    try:
        yield codec.decode(ctx.store.get(key))
    except CaptureFormatError as exc:  # one bad object must not hide the rest of the window
        stats["unreadable"] = stats.get("unreadable", 0) + 1
        log.warning("skipping capture object %s: %s", key, exc)


def _jsonl_chunks(ctx: Context, key: str, inside: bool) -> Iterator[CaptureChunk]:
    rows: list[dict] = []
    times: list[int] = []
    with ctx.store.open(key) as f:
        for line in f:  # binary lines: orjson parses bytes
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(row, dict):
                continue
            if inside:
                times.append(0)
            else:
                try:
                    times.append(_us(datetime.fromisoformat(row["at"])))
                except (KeyError, TypeError, ValueError):
                    continue  # no readable time at the window's edge: not in the window
            rows.append(row)
            if len(rows) >= CHUNK_ROWS:
                yield chunk_from_rows(rows, times)
                rows, times = [], []
    if rows:
        yield chunk_from_rows(rows, times)


def version_role_counts(chunk: CaptureChunk, counts: dict[str, dict[str, int]]) -> None:
    """rows per version and role ({"1": {"served": n, "shadow": m}}), counted in numpy."""
    pairs = chunk.version * 2 + chunk.shadow
    if pairs.size and pairs.min() >= 0 and pairs.max() < 1 << 20:  # small versions: bincount
        n = np.bincount(pairs)
        values = np.flatnonzero(n)
        n = n[values]
    else:
        values, n = np.unique(pairs, return_counts=True)
    for v, c in zip(values.tolist(), n.tolist(), strict=True):
        role = "shadow" if v % 2 else "served"
        slot = counts.setdefault(str(v // 2), {})
        slot[role] = slot.get(role, 0) + c
