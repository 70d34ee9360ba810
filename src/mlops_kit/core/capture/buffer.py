"""Capture of served requests for monitoring, with bounded overhead on the request path.

A request's arrays are copied into preallocated numpy column buffers of its model and schema
as it is captured (codec.Columns: ~1 µs for one record, one slice assignment per column for a
batch; no per-request object is kept). A flush swaps the buffers out and slices them into one
columnar object per model and schema (core.capture.codec: a JSON header + the raw
arrays, the ids late labels join on), partitioned by model and hour so a monitoring window
lists only the hours it needs. Encoding 2,000 rows takes ~2-4 ms, yielding the GIL every slice
of a few hundred rows, so a flush never holds it long: the local server flushes on a background
thread (woken by `full` as max_rows rows are buffered, or by its 1 s tick for the age-based
flush), the serverless shells hand a due flush to `flush_soon`'s thread and answer at once."""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np

from mlops_kit.clock import SystemClock
from mlops_kit.core.capture import codec
from mlops_kit.core.capture.codec import Columns, RequestBlock
from mlops_kit.core.layout import capture_object_key
from mlops_kit.errors import MlopsKitError
from mlops_kit.ports import Clock, ObjectStore

__all__ = ["CaptureBuffer", "RequestBlock", "row_id"]
log = logging.getLogger("mlops_kit.serving.capture")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_yield_gil = functools.partial(time.sleep, 0)
_US = timedelta(microseconds=1)


class HealthCounters(Protocol):
    """What a flush needs of serving's health counters (core.serving.health.ServingHealth,
    written with the captures): a protocol, so that capture imports no stage."""

    first_at: datetime | None

    def pending(self) -> bool: ...

    def flush(self) -> int: ...


def row_id(request_id: str, index: int, batch_size: int) -> str:
    """The id late labels join on: the request id, or request_id#index inside a batch."""
    return request_id if batch_size == 1 else f"{request_id}#{index}"


def epoch_us(at: datetime) -> int:
    """Microseconds since the epoch (a naive time is taken as UTC)."""
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _US


def _now_us_of(clock: Clock) -> Callable[[], int]:
    """The clock's now in epoch µs: the system clock's without a datetime (time.time_ns,
    ~0.1 µs vs ~0.8 µs for datetime.now + the conversion), any other clock's through now()."""
    if type(clock) is SystemClock:
        return lambda: time.time_ns() // 1000
    return lambda: epoch_us(clock.now())


class CaptureBuffer:
    """Buffers captured requests; a background flusher (local server) or the end of an
    invocation (serve function) writes them when `due()`. Requests only append: the request
    path never writes to the store unless the buffer is far past its size (backpressure).

    A write that fails keeps its rows (encoded, in arrival order) and the next flush retries
    them first. They are bounded by `max_retained_rows`: past it the oldest are dropped and
    counted in `dropped_rows` (and logged), never silently."""

    def __init__(
        self, store: ObjectStore, clock: Clock, *, max_rows: int = 2000, max_age_s: float = 10.0,
        max_retained_rows: int | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self._pending: dict[tuple, Columns] = {}
        self._by_version: dict[tuple[str, int], Columns] = {}  # into _pending
        self._schemas: dict[tuple[str, int], tuple] = {}
        self._count = 0
        self._first_us: int | None = None  # the oldest buffered row's time (epoch µs)
        self._health_seen: datetime | None = None
        self._health_us = 0
        self._now_us = _now_us_of(clock)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        # set when max_rows rows are buffered, cleared by a flush: a background flusher
        # (local.http_app.ServeApp) waits on it, so it writes small and often, not on a tick
        self.full = threading.Event()
        self.written_objects = 0
        # serving health counters, written with the captures (ModelService attaches its own)
        self.health: HealthCounters | None = None
        self.max_retained_rows = max_retained_rows or 50 * max_rows
        self._failed: deque[tuple[str, bytes, int]] = deque()  # (model, object, rows)
        self._failed_rows = 0
        self.dropped_rows = 0  # rows given up after failed writes (a metric)
        # flush_soon's background flusher (the serverless shells): started on first use
        self._bg = threading.Condition()
        self._bg_wanted = self._bg_busy = False
        self._bg_thread: threading.Thread | None = None

    @property
    def pending_rows(self) -> int:
        """Rows not yet written: buffered, plus kept from failed writes."""
        with self._lock:
            return self._count + self._failed_rows

    def add(self, model: str, block: RequestBlock, at: datetime) -> None:
        self._append(model, block.request_id, block.at_us, block.version, block.shadow,
                     block.latency_ms, block.feed, block.labels, block.probabilities)

    def capture(self, model: str, request_id: str, at: datetime | None, version: int, role: str,
                latency_ms: float, feed: dict[str, np.ndarray], labels: np.ndarray,
                probabilities: np.ndarray | None) -> None:
        """at: the request's time; None: now by this buffer's clock (the serving path: no
        datetime is built per request)."""
        # _append's body, inlined: a call costs as much as the work on this path
        at_us = self._now_us() if at is None else epoch_us(at)
        lock = self._lock
        lock.acquire()  # not `with`: its __enter__/__exit__ calls cost ~0.1 µs more
        try:
            columns = self._by_version.get((model, version))
            if columns is None:
                columns = self._columns_for(model, version, feed, labels, probabilities)
            self._count += columns.append(request_id, at_us, version, role == "shadow",
                                          latency_ms, feed, labels, probabilities)
            if self._first_us is None:
                self._first_us = at_us
            count = self._count
        finally:
            lock.release()
        if count >= self.max_rows:
            self._full(count)

    def _append(self, model: str, request_id: str, at_us: int, version: int, shadow: bool,
                latency_ms: float, feed: dict[str, np.ndarray], labels: np.ndarray,
                probabilities: np.ndarray | None) -> None:
        with self._lock:
            # A model version fixes the schema (features, dtypes, outputs): one schema_key per
            # version, then the rows join the column buffers of their model and schema (found
            # by (model, version) on the warm path: a schema tuple is re-hashed on each lookup)
            columns = self._by_version.get((model, version))
            if columns is None:
                columns = self._columns_for(model, version, feed, labels, probabilities)
            self._count += columns.append(request_id, at_us, version, shadow, latency_ms, feed,
                                          labels, probabilities)
            if self._first_us is None:
                self._first_us = at_us
            count = self._count
        if count >= self.max_rows:
            self._full(count)

    def _full(self, count: int) -> None:
        """max_rows are buffered: wake the flusher waiting on `full` (the local server's);
        at 4x max_rows nobody is flushing: bound memory, flush here, on the request path."""
        if count >= 4 * self.max_rows:
            self.flush()
        elif not self.full.is_set():
            self.full.set()

    def _columns_for(self, model: str, version: int, feed: dict[str, np.ndarray],
                     labels: np.ndarray, probabilities: np.ndarray | None) -> Columns:
        schema = self._schemas.get((model, version))
        if schema is None:
            schema = self._schemas[(model, version)] = codec.schema_key(
                feed, labels, probabilities)
        columns = self._pending.get((model, schema))
        if columns is None:
            # room for a flush's rows (the buffers double past it); a buffer
            # that never flushes by size (batch scoring's sample) starts small
            columns = self._pending[(model, schema)] = Columns(
                feed, labels, probabilities, min(self.max_rows, 8192))
        self._by_version[(model, version)] = columns
        return columns

    def due(self) -> bool:
        """Asked after every request: reads of fields set under the lock (a stale read only
        moves a flush by one request), one clock read and one comparison at most."""
        if self._failed or self._count >= self.max_rows:
            return True
        # when the oldest unwritten row or health count was taken (epoch µs), or None
        started = self._first_us if self._count else None
        health = self.health
        first = health.first_at if health is not None else None
        if first is not None:
            if first is not self._health_seen:  # converted once per flush of the counters
                self._health_seen, self._health_us = first, epoch_us(first)
            if started is None or self._health_us < started:
                started = self._health_us
        if started is None:
            return False
        return self._now_us() - started >= self.max_age_s * 1e6

    def flush(self, *, counters: bool = True) -> int:
        """Write what is buffered; returns the rows written. One flush at a time (objects are
        named by the flush's own time and a random suffix, so two never collide anyway). A
        failed write keeps its rows for the next flush (see the class docstring).
        counters=False: the serving health counters only once they are max_age_s old (the
        background flusher's size-driven flushes: a batch-heavy workload flushes every few
        requests, and a health object each time cost as much CPU as the capture's own)."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending, self._count, self._first_us = self._pending, {}, 0, None
                self._by_version = {}
                self.full.clear()
                retry, self._failed, self._failed_rows = self._failed, deque(), 0
            # sleep(0) between columns releases the GIL: a request thread that wants it
            # back (after onnxruntime, which runs without it) waits for one column's coding,
            # not for the whole encode (the interpreter's switch interval is 5 ms)
            objects = list(retry) + [(model, columns.encode(model, _yield_gil), len(columns))
                                     for (model, _), columns in pending.items()]
            written = 0
            now = self.clock.now()
            failed: list[tuple[str, bytes, int]] = []
            for model, body, rows in objects:
                if failed:  # the store is failing: keep the rest in order, try next time
                    failed.append((model, body, rows))
                    continue
                key = capture_object_key(model, now, uuid.uuid4().hex[:8], codec.SUFFIX)
                _yield_gil()
                try:
                    self.store.put(key, body, content_type="application/octet-stream")
                except Exception as exc:  # noqa: BLE001 - kept and retried, never lost silently
                    log.warning("capture write failed (%s): %d rows kept for the next flush",
                                type(exc).__name__, rows)
                    failed.append((model, body, rows))
                    continue
                written += rows
                self.written_objects += 1
            if failed:
                self._keep(failed)
            if self.health is not None and self.health.pending() \
                    and (counters or self._counters_aged()):
                self.health.flush()
            return written

    def _counters_aged(self) -> bool:
        first = self.health.first_at if self.health is not None else None
        return first is not None and self._now_us() - epoch_us(first) >= self.max_age_s * 1e6

    def flush_soon(self) -> None:
        """Flush on a background thread and return at once: the serverless shells call this
        when `due()`, so a capture write never delays a response. One daemon thread, started
        on first use (and again after a fork); a request while it writes only marks another
        flush wanted. On Lambda the thread is frozen with the environment between invocations
        and resumes at the next one; `drain` (at shutdown, in tests) waits for it."""
        with self._bg:
            if self._bg_thread is None or not self._bg_thread.is_alive():
                # in the caller's context (contextvars): the store's credentials are the shell's
                self._bg_thread = threading.Thread(target=contextvars.copy_context().run,
                                                   args=(self._bg_loop,), daemon=True,
                                                   name="mlops-kit-capture-flush")
                self._bg_thread.start()
            self._bg_wanted = True
            self._bg.notify()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until no background flush is wanted or running; False on timeout."""
        with self._bg:
            return self._bg.wait_for(lambda: not (self._bg_wanted or self._bg_busy), timeout)

    def _bg_loop(self) -> None:
        while True:
            with self._bg:
                self._bg.wait_for(lambda: self._bg_wanted)
                self._bg_wanted, self._bg_busy = False, True
            try:
                self.flush(counters=False)
            except MlopsKitError as exc:  # a store fault: rows and counts kept for the next
                log.warning("capture: background flush failed (%s: %s); kept for the next",
                            type(exc).__name__, str(exc)[:200])
            except Exception:  # noqa: BLE001 - the rows are kept (flush's retry); log, go on
                log.exception("capture: background flush failed")
            finally:
                with self._bg:
                    self._bg_busy = False
                    self._bg.notify_all()

    def _keep(self, failed: list[tuple[str, bytes, int]]) -> None:
        with self._lock:
            self._failed.extendleft(reversed(failed))  # older than anything failed since
            self._failed_rows += sum(r for _, _, r in failed)
            while self._failed_rows > self.max_retained_rows and len(self._failed) > 1:
                _, _, rows = self._failed.popleft()
                self._failed_rows -= rows
                self.dropped_rows += rows
                log.error("capture: %d rows dropped after failed writes (kept at most %d); "
                          "%d dropped so far", rows, self.max_retained_rows, self.dropped_rows)
