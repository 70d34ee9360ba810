"""Issues 24 and 28: capture flushes that never stall requests.

- The local server's flusher wakes as soon as max_rows rows are buffered (the buffer's `full`
  event), not on its 1 s tick: at 5,000 req/s the tick alone flushed 5,000 rows at once, and
  past 4x max_rows a request flushed on its own path. The write is on the flusher's thread.
- Settling the one-record requests runs in slices with a GIL yield between them; whatever the
  mix of one-record feeds (the V1 decoder's views of one base array, the exact path's own
  arrays) and batches, and wherever the slices fall, the capture object is the one a
  request-at-a-time copy gives: same values, same objects, same order."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_kit.core.capture import codec
from mlops_kit.core.serving.http_api import HttpApi
from mlops_kit.local.http_app import ServeApp
from tests.support import feature_records


class ThreadRecordingStore:
    """The real store; each put remembers the thread that made it."""

    def __init__(self, store) -> None:
        self.store, self.threads = store, []

    def put(self, key, body, **kw):
        self.threads.append(threading.current_thread().name)
        return self.store.put(key, body, **kw)

    def __getattr__(self, name):
        return getattr(self.store, name)


def _predict(api: HttpApi, n: int = 1) -> None:
    body = json.dumps({"instances": feature_records(n)}).encode()
    resp = api.handle("POST", "/v1/models/churn:predict", {"content-type": "application/json"},
                      body, request_id=None)
    assert resp.status == 200, resp.body


def _recorded(trained, max_rows: int):
    """An API whose capture buffer flushes at max_rows rows into a store that records the
    threads writing to it."""
    service = trained.service(capture=True)
    capture = service.capture
    capture.max_rows = max_rows
    capture.store = store = ThreadRecordingStore(capture.store)
    return HttpApi(service), capture, store


def test_the_flusher_writes_within_well_under_a_second_of_max_rows_rows(trained):
    api, capture, store = _recorded(trained, 40)
    app = ServeApp(api, flush_interval_s=60.0)  # the tick never fires in this test
    app.start_flusher()
    try:
        for _ in range(39):
            _predict(api)
        time.sleep(0.2)
        assert store.threads == [] and capture.pending_rows == 39  # not due yet
        start = time.monotonic()
        _predict(api)  # the 40th row: the request only sets the event
        while not store.threads and time.monotonic() - start < 5:
            time.sleep(0.002)
        waited = time.monotonic() - start
        assert store.threads, "no flush within 5 s"
        assert waited < 0.5, f"flushed {waited:.3f} s after max_rows rows"
        assert set(store.threads) == {"capture-flush"}  # never on the request's thread
        assert capture.pending_rows == 0
    finally:
        start = time.monotonic()
        app.close()  # wakes the flusher: it does not wait for its 60 s tick
        assert time.monotonic() - start < 5


def test_without_a_flusher_the_request_path_still_bounds_the_buffer(trained):
    api, capture, store = _recorded(trained, 10)
    for _ in range(39):
        _predict(api)
    assert store.threads == [] and capture.full.is_set()
    _predict(api)  # 4x max_rows and nobody flushed: this request does
    assert store.threads == [threading.current_thread().name]
    assert capture.pending_rows == 0 and not capture.full.is_set()


# -- settle in slices --------------------------------------------------------------------

def _decoder_views(age: float, tenure: float, plan: str, region: str) -> dict[str, np.ndarray]:
    """The V1 decoder's one-record feed: each array a [1, 1] view of one base per kind."""
    num = np.array([age, tenure], dtype=np.float32).reshape(-1, 1, 1)
    cat = np.array([plan, region], dtype=object).reshape(-1, 1, 1)
    # the decoder orders a feed by the spec: numeric and categorical interleaved
    return {"age": num[0], "plan": cat[0], "tenure": num[1], "region": cat[1]}


def _own_arrays(age: float, tenure: float, plan: str, region: str) -> dict[str, np.ndarray]:
    """The exact path's one-record feed: one array per feature."""
    return {"age": np.asarray([age], np.float32).reshape(-1, 1),
            "plan": np.array([plan], dtype=object).reshape(-1, 1),
            "tenure": np.asarray([tenure], np.float32).reshape(-1, 1),
            "region": np.array([region], dtype=object).reshape(-1, 1)}


def _batch(rows: list[tuple]) -> dict[str, np.ndarray]:
    cols = list(zip(*rows, strict=True))
    return {"age": np.array(cols[0], np.float32).reshape(-1, 1),
            "plan": np.array(cols[2], dtype=object).reshape(-1, 1),
            "tenure": np.array(cols[1], np.float32).reshape(-1, 1),
            "region": np.array(cols[3], dtype=object).reshape(-1, 1)}


_value = st.one_of(st.floats(width=32, allow_nan=True), st.just(float("nan")))
_cat = st.sampled_from(["basic", "pro", "__missing__", "é", ""])
_row = st.tuples(_value, _value, _cat, _cat)
_request = st.one_of(
    st.tuples(st.just("views"), st.lists(_row, min_size=1, max_size=1)),
    st.tuples(st.just("own"), st.lists(_row, min_size=1, max_size=1)),
    st.tuples(st.just("batch"), st.lists(_row, min_size=1, max_size=6)))


@settings(max_examples=60, deadline=None)
@given(requests=st.lists(_request, min_size=1, max_size=40),
       slice_size=st.integers(1, 7), capacity=st.integers(1, 8))
def test_settling_in_slices_gives_the_objects_a_request_at_a_time_copy_gives(
        requests, slice_size, capacity):
    feeds = []
    for kind, rows in requests:
        feed = _decoder_views(*rows[0]) if kind == "views" else \
            _own_arrays(*rows[0]) if kind == "own" else _batch(rows)
        n = len(rows)
        labels = np.array([f"c{len(r[2])}" for r in rows], dtype=object)
        proba = np.linspace(0, 1, 2 * n, dtype=np.float32).reshape(n, 2)
        feeds.append((feed, labels, proba))
    pauses = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(codec, "SETTLE_SLICE", slice_size)
        columns = codec.Columns(*feeds[0], capacity=capacity)
        for k, (feed, labels, proba) in enumerate(feeds):
            columns.append(f"r{k}", 1000 + k, 1, False, 0.5, feed, labels, proba)
        held = len(columns._singles)
        body = columns.encode("m", lambda: pauses.append(1))
    assert len(pauses) >= -(-held // slice_size)  # a yield after every slice at least
    # the reference: every request copied at once, value by value, in arrival order
    names = ["age", "plan", "tenure", "region"]
    want = {name: [v for f, _, _ in feeds for v in f[name].reshape(-1).tolist()]
            for name in names}
    for name in names:  # the held objects themselves, before the categorical coding
        got = columns._cols[names.index(name)][:len(columns)].tolist()
        if name in ("age", "tenure"):
            assert np.array_equal(np.array(got, np.float32), np.array(want[name], np.float32),
                                  equal_nan=True)
        else:
            assert all(a is b for a, b in zip(got, want[name], strict=True))
    chunk = codec.decode(body)
    assert chunk.n == len(columns) == sum(len(rows) for _, rows in requests)
    for name in ("age", "tenure"):
        assert np.array_equal(chunk.features[name], np.array(want[name], np.float32),
                              equal_nan=True)
    for name in ("plan", "region"):
        cat = chunk.features[name]
        assert [None if c < 0 else cat.values[c] for c in cat.codes] == \
            [None if v in ("__missing__", "") else v for v in want[name]]
    labels = chunk.prediction
    assert [labels.values[c] for c in labels.codes] == \
        [v for _, lab, _ in feeds for v in lab.tolist()]
    assert chunk.probabilities.tobytes() == np.concatenate([p for _, _, p in feeds]).tobytes()
    assert chunk.request_ids.tolist() == [f"r{k}".encode() for k in range(len(feeds))]
