"""A capture write that fails keeps its rows for the next flush (issue 24: a flush that hit
EMFILE threw 300 of 300 rows away); the rows kept are bounded, and what is dropped past the
bound is counted."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from mlops_kit.clock import FixedClock
from mlops_kit.core.capture import codec
from mlops_kit.core.capture.buffer import CaptureBuffer

T = datetime(2026, 3, 2, 12, 30, 5, tzinfo=UTC)


class FlakyStore:
    """Wraps a store: put raises OSError(EMFILE) while `failing`."""

    def __init__(self, inner) -> None:
        self.inner, self.failing, self.refused = inner, True, 0

    def put(self, key, body, **kw):
        if self.failing:
            self.refused += 1
            raise OSError(24, "Too many open files")
        return self.inner.put(key, body, **kw)


def _capture(buf: CaptureBuffer, rid: str, n: int = 1, model: str = "churn") -> None:
    feed = {"age": np.arange(n, dtype=np.float32).reshape(-1, 1)}
    buf.capture(model, rid, T, 1, "served", 0.5, feed, np.zeros(n, np.int64),
                np.full((n, 2), 0.5, np.float32))


def _stored_ids(store) -> list[str]:
    return [i for info in store.list("captures/") for i in
            codec.decode(store.get(info.key)).ids()]


def test_failed_flush_keeps_the_rows_and_the_next_one_writes_them(backend):
    store = FlakyStore(backend.ctx.store)
    buf = CaptureBuffer(store, FixedClock(T), max_rows=1000)
    for i in range(300):
        _capture(buf, f"a{i}")
    assert buf.flush() == 0 and store.refused == 1
    assert buf.pending_rows == 300 and buf.due() and buf.dropped_rows == 0
    for i in range(5):  # more traffic while the store is down
        _capture(buf, f"b{i}", model="other")
    assert buf.flush() == 0 and buf.pending_rows == 305
    store.failing = False
    assert buf.flush() == 305 and buf.pending_rows == 0
    ids = _stored_ids(backend.ctx.store)
    assert sorted(ids) == sorted([f"a{i}" for i in range(300)] + [f"b{i}" for i in range(5)])
    assert buf.dropped_rows == 0 and not buf.due()


def test_rows_kept_are_bounded_and_the_oldest_dropped_are_counted(backend):
    store = FlakyStore(backend.ctx.store)
    buf = CaptureBuffer(store, FixedClock(T), max_rows=1000, max_retained_rows=250)
    for batch in range(4):  # 4 failed flushes of 100 rows each: 400 > 250
        for i in range(100):
            _capture(buf, f"f{batch}-{i}")
        assert buf.flush() == 0
    assert buf.dropped_rows == 200 and buf.pending_rows == 200
    store.failing = False
    assert buf.flush() == 200
    ids = _stored_ids(backend.ctx.store)
    assert {i.split("-")[0] for i in ids} == {"f2", "f3"}  # the newest were kept


def test_a_durable_spool_is_replayed_after_a_crash_and_removed_after_a_flush(backend, tmp_path):
    from mlops_kit.local.capture_spool import SpooledCaptureBuffer

    store = backend.ctx.store
    spool = tmp_path / "spool"
    crashed = SpooledCaptureBuffer(store, FixedClock(T), spool, max_rows=1000)
    for i in range(20):
        _capture(crashed, f"c{i}", n=1 + i % 3)
    crashed._file.close()  # the process dies: nothing flushed, the lock released
    assert _stored_ids(store) == []
    live = SpooledCaptureBuffer(store, FixedClock(T), spool, max_rows=1000)
    assert live.replayed_rows == sum(1 + i % 3 for i in range(20))
    assert {i.split("#")[0] for i in _stored_ids(store)} == {f"c{i}" for i in range(20)}
    assert len(_stored_ids(store)) == live.replayed_rows
    _capture(live, "after")
    assert len(list(spool.glob("*.spool"))) == 1  # its own, holding "after"
    other = SpooledCaptureBuffer(store, FixedClock(T), spool, max_rows=1000)
    assert other.replayed_rows == 0  # a live worker's spool is locked: never replayed
    assert live.flush() == 1 and "after" in _stored_ids(store)
    live.close()
    other.close()
    assert list(spool.glob("*.spool")) == []
