"""Issue 28: the serverless shells' background flusher (flush_soon) writes the serving health
counters only once they are capture_max_age_s old; a batch-heavy workload flushes its captures
every couple of requests, and a health object with each cost as much CPU as the capture
object itself. An explicit flush (drain at SIGTERM, the local server's tick, the tests) still
writes everything at once."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_kit.clock import FixedClock
from mlops_kit.core.capture import codec
from mlops_kit.core.capture.buffer import CaptureBuffer
from mlops_kit.core.serving.health import ServingHealth

T = datetime(2026, 3, 2, 12, 30, 5, tzinfo=UTC)


def _buffer(backend) -> tuple[CaptureBuffer, FixedClock]:
    clock = FixedClock(T)
    buf = CaptureBuffer(backend.ctx.store, clock, max_rows=100, max_age_s=10.0)
    buf.health = ServingHealth(backend.ctx.store, clock)
    return buf, clock


def _request(buf: CaptureBuffer, rid: str, n: int = 60) -> None:
    feed = {"age": np.arange(n, dtype=np.float32).reshape(-1, 1),
            "plan": np.array(["basic", "pro"] * (n // 2), dtype=object).reshape(-1, 1)}
    buf.capture("churn", rid, buf.clock.now(), 1, "served", 0.5, feed,
                np.zeros(n, np.int64), np.full((n, 2), 0.5, np.float32))
    assert buf.health is not None
    buf.health.record("churn", 1, 200, 1.0)


def _objects(backend, prefix: str) -> list[str]:
    return [i.key for i in backend.ctx.store.list(prefix)]


def test_background_flushes_by_size_leave_young_counters_for_later(backend):
    buf, clock = _buffer(backend)
    for i in range(4):  # 2 size-driven flushes of 120 rows
        _request(buf, f"r{i}")
        if buf.due():
            buf.flush_soon()
            assert buf.drain(10)
    assert len(_objects(backend, "captures/churn/")) == 2
    assert _objects(backend, "captures/_health/") == []  # 4 requests counted, not yet written
    assert buf.health is not None and buf.health.snapshot()["churn"]["1"]["2xx"] == 4
    clock.advance(seconds=10)  # the counters are now max_age_s old: the next flush writes them
    assert buf.due()
    buf.flush_soon()
    assert buf.drain(10)
    (key,) = _objects(backend, "captures/_health/")
    assert b'"2xx":4' in backend.ctx.store.get(key)
    assert not buf.health.pending() and not buf.due()


def test_an_explicit_flush_writes_the_counters_at_once(backend):
    buf, _ = _buffer(backend)
    _request(buf, "a")
    assert buf.flush() == 60
    assert len(_objects(backend, "captures/_health/")) == 1
    (key,) = _objects(backend, "captures/churn/")
    chunk = codec.decode(backend.ctx.store.get(key))
    assert chunk.n == 60 and list(chunk.ids())[:2] == ["a#0", "a#1"]


def test_categorical_codes_keep_first_seen_order_and_missing(backend):
    cat = codec.encode_categorical(["b", "a", "b", None, "", codec.MISSING_CATEGORY, "c"])
    assert cat.codes.tolist() == [0, 1, 0, -1, -1, -1, 2]
    assert cat.codes.dtype == np.int32 and cat.values.tolist() == ["b", "a", "c"]
    one = codec.encode_categorical(np.array([["x"]], dtype=object))
    assert one.codes.tolist() == [0] and one.values.tolist() == ["x"]
    assert codec.encode_categorical([]).codes.size == 0



def _reference_codes(values: list) -> tuple[list[int], list[str]]:
    """The coding rule spelled out value by value (what encode_categorical does in C)."""
    vocab: dict = {}
    codes = []
    for v in values:
        if v is None or v == codec.MISSING_CATEGORY or v == "":
            codes.append(-1)
        else:
            codes.append(vocab.setdefault(v, len(vocab)))
    return codes, [v.decode() if isinstance(v, bytes) else str(v) for v in vocab]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["basic", "pro", "", None, codec.MISSING_CATEGORY, "é",
                                 b"raw", 1, 1.0, True, 0, "x" * 300]), max_size=60))
def test_categorical_codes_equal_the_rule_value_by_value(values):
    """encode_categorical's one pass (a defaultdict handing out codes) against the rule: the
    same codes and vocabulary, whatever mix of values, missing markers and equal keys of
    other types (1, 1.0 and True are one dict key, as they were with dict.fromkeys)."""
    cat = codec.encode_categorical(list(values))
    codes, vocab = _reference_codes(list(values))
    assert cat.codes.tolist() == codes and cat.values.tolist() == vocab
    assert cat.codes.dtype == np.int32

def test_one_record_requests_between_batches_keep_their_order_and_values():
    """One-record requests are held by reference and copied with the next batch or at the
    encode: the capture object is the same as copying each at once."""
    rng = np.random.default_rng(5)

    def request(n: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        feed = {"age": rng.normal(size=(n, 1)).astype(np.float32),
                "plan": np.array(rng.choice(["basic", "pro", "__missing__"], n),
                                 dtype=object).reshape(n, 1)}
        proba = rng.random((n, 2)).astype(np.float32)
        return feed, rng.integers(0, 2, n), proba

    sizes = [1, 1, 3, 1, 2, 1, 1]
    requests = [request(n) for n in sizes]
    first = requests[0]
    columns = codec.Columns(first[0], first[1], first[2], capacity=2)  # grows on the way
    for k, (feed, labels, proba) in enumerate(requests):
        assert columns.append(f"r{k}", 1000 + k, 1, False, 0.5, feed, labels, proba) == len(labels)
    chunk = codec.decode(columns.encode("churn"))
    assert chunk.n == sum(sizes) == len(columns)
    np.testing.assert_array_equal(chunk.features["age"],
                                  np.concatenate([f["age"] for f, _, _ in requests], axis=None))
    plan = chunk.features["plan"]
    want = np.concatenate([f["plan"] for f, _, _ in requests], axis=None).tolist()
    assert [None if c < 0 else plan.values[c] for c in plan.codes] == \
        [None if v == "__missing__" else v for v in want]
    np.testing.assert_array_equal(chunk.prediction, np.concatenate([lab for _, lab, _ in requests]))
    np.testing.assert_array_equal(chunk.probabilities,
                                  np.concatenate([p for _, _, p in requests]))
    assert chunk.ids()[:5] == ["r0", "r1", "r2#0", "r2#1", "r2#2"]
    assert chunk.at_us.tolist()[:4] == [1000, 1001, 1002, 1002]
