"""Serving health per model and version: 2xx / 4xx / 5xx counts, latency percentiles and the
routing events (a canary skipped because the request did not fit the challenger's contract,
a shadow that failed or was skipped). Counted in memory on the request path (a dict update
under a lock), written with the captures (by the serverless shells' background flusher once
they are capture_max_age_s old, see CaptureBuffer.flush) as one small JSON object under
captures/_health/<model>/<day>/<hour>/, and read back by `registry show`, the console and the
monitor, which merge the objects of a window.

Latencies go to fixed log-spaced buckets (12.2% apart, from 0.05 ms), so the objects of many
instances and hours merge exactly and a percentile is read off the merged histogram (the
bucket's upper bound: at most 12.2% above the true value)."""

from __future__ import annotations

import bisect
import json
import logging
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

from mlops_kit.core.layout import health_hour_prefix
from mlops_kit.ports import Clock, ObjectStore

log = logging.getLogger("mlops_kit.serving")
_BASE_MS, _RATIO, _TOP = 0.05, 1.122, 160  # bucket 159 ends past 3 minutes
EVENTS = ("canary_skipped", "canary_failed", "shadow_skipped", "shadow_failed")


def bucket_upper_ms(i: int) -> float:
    return _BASE_MS * _RATIO ** int(i)


# the buckets' upper bounds (the last bucket has none): a latency's bucket is one bisect in C
# (~0.1 µs; the log, ceil and min it replaces took ~0.4 µs of every request)
_UPPER = [bucket_upper_ms(i) for i in range(_TOP - 1)]
_KEYS = [str(i) for i in range(_TOP)]


def bucket(latency_ms: float) -> int:
    """The first bucket whose upper bound is at least latency_ms (the last one past them)."""
    return bisect.bisect_left(_UPPER, latency_ms)


def status_class(status: int) -> str:
    return "5xx" if status >= 500 else "4xx" if status >= 400 else "2xx"


_VERSION_KEYS = {v: str(v) for v in range(1, 1025)}  # str(int(v)) without the calls


def _slot() -> dict[str, Any]:
    return {"2xx": 0, "4xx": 0, "5xx": 0, "latency": {}, "events": {}}


class ServingHealth:
    """Counters of one serving instance since its last flush."""

    def __init__(self, store: ObjectStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._counts: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.first_at: datetime | None = None  # the first count since the last flush

    def _get(self, model: str, version: int | None) -> dict[str, Any]:
        if self.first_at is None:
            self.first_at = self.clock.now()
        per_model = self._counts.get(model)
        if per_model is None:
            per_model = self._counts[model] = {}
        key = "unrouted" if version is None else _VERSION_KEYS.get(version) or str(int(version))
        slot = per_model.get(key)
        if slot is None:
            slot = per_model[key] = _slot()
        return slot

    def record(self, model: str, version: int | None, status: int, latency_ms: float) -> None:
        b = _KEYS[bisect.bisect_left(_UPPER, latency_ms)]  # bucket(), inlined
        kind = "2xx" if status < 400 else "4xx" if status < 500 else "5xx"  # status_class
        key = "unrouted" if version is None else _VERSION_KEYS.get(version) or str(int(version))
        lock = self._lock
        lock.acquire()  # not `with`: its __enter__/__exit__ calls cost ~0.1 µs more
        try:
            per_model = self._counts.get(model)  # a flush empties _counts: then _get
            slot = per_model.get(key) if per_model is not None else None
            if slot is None:
                slot = self._get(model, version)
            slot[kind] += 1
            latency = slot["latency"]
            latency[b] = latency.get(b, 0) + 1
        finally:
            lock.release()

    def event(self, model: str, version: int | None, name: str) -> None:
        with self._lock:
            events = self._get(model, version)["events"]
            events[name] = events.get(name, 0) + 1

    def pending(self) -> bool:
        return bool(self._counts)

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        with self._lock:
            return json.loads(json.dumps(self._counts))

    def flush(self) -> int:
        """Write one object per model; returns the objects written. Counts are taken first;
        a failed write puts the counts not yet written back (added to those counted since),
        then raises: the next flush writes them."""
        with self._lock:
            counts, self._counts, first, self.first_at = self._counts, {}, self.first_at, None
        now = self.clock.now()
        items = list(counts.items())
        for i, (model, versions) in enumerate(items):
            key = (f"{health_hour_prefix(model, now)}{now:%Y%m%dT%H%M%S}-"
                   f"{uuid.uuid4().hex[:8]}.json")
            body = json.dumps({"model": model, "at": now.isoformat(), "versions": versions},
                              separators=(",", ":")).encode()
            try:
                self.store.put(key, body, content_type="application/json")
            except Exception:
                with self._lock:
                    for m, vs in items[i:]:
                        merge(self._counts.setdefault(m, {}), vs)
                    if first is not None and (self.first_at is None or first < self.first_at):
                        self.first_at = first
                raise
        return len(counts)


def merge(into: dict[str, dict[str, Any]], versions: dict[str, Any]) -> None:
    for v, c in versions.items():
        slot = into.setdefault(v, _slot())
        for k in ("2xx", "4xx", "5xx"):
            slot[k] += int(c.get(k, 0))
        for b, n in (c.get("latency") or {}).items():
            slot["latency"][b] = slot["latency"].get(b, 0) + int(n)
        for e, n in (c.get("events") or {}).items():
            slot["events"][e] = slot["events"].get(e, 0) + int(n)


def percentile(histogram: dict[str, int], q: float) -> float | None:
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = q * total, 0
    for b in sorted(histogram, key=int):
        seen += histogram[b]
        if seen >= rank:
            return round(bucket_upper_ms(int(b)), 3)
    return round(bucket_upper_ms(max(map(int, histogram))), 3)


def summarize(slot: dict[str, Any]) -> dict[str, Any]:
    requests = slot["2xx"] + slot["4xx"] + slot["5xx"]
    return {"requests": requests, "2xx": slot["2xx"], "4xx": slot["4xx"], "5xx": slot["5xx"],
            "5xx_rate": slot["5xx"] / requests if requests else 0.0,
            "latency_ms": {f"p{int(q * 100)}": percentile(slot["latency"], q)
                           for q in (0.5, 0.95, 0.99)},
            "events": dict(slot["events"])}


def read_health(store: ObjectStore, model: str, start: datetime, end: datetime,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The health of `model` per version over [start, end] (whole hours), from the stored
    counter objects; `extra`: counts not yet flushed (this instance's)."""
    merged: dict[str, dict[str, Any]] = {}
    objects = 0
    t = start.replace(minute=0, second=0, microsecond=0)
    while t <= end:
        for info in store.list(health_hour_prefix(model, t)):
            if not info.key.endswith(".json"):
                continue
            try:
                doc = json.loads(store.get(info.key))
                merge(merged, doc.get("versions") or {})
                objects += 1
            except (ValueError, TypeError, AttributeError) as exc:
                log.warning("skipping health object %s: %s", info.key, exc)
        t += timedelta(hours=1)
    if extra:
        merge(merged, extra)
    return {"window": {"start": start.isoformat(), "end": end.isoformat()}, "objects": objects,
            "versions": {v: summarize(s) for v, s in sorted(merged.items())}}


def over_threshold(health: dict[str, Any], version: int | str, max_rate: float,
                   min_requests: int = 10) -> str | None:
    """Why the 5xx rate of `version` raises an alert, or None."""
    s = (health.get("versions") or {}).get(str(version))
    if not s or s["requests"] < min_requests or s["5xx_rate"] <= max_rate:
        return None
    return (f"v{version}: {s['5xx']} of {s['requests']} requests answered 5xx "
            f"({s['5xx_rate']:.1%} > monitoring.max_5xx_rate {max_rate:.1%})")
