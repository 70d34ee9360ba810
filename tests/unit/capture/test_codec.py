"""The columnar capture object: what a flush writes, read back exactly, never pickled; row ids
and label keys keep the string semantics row ids always had."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from mlops_kit.clock import FixedClock
from mlops_kit.core.capture import codec
from mlops_kit.core.capture.buffer import CaptureBuffer, epoch_us
from mlops_kit.core.capture.chunks import label_keys
from mlops_kit.core.capture.codec import CaptureFormatError, RequestBlock

T = datetime(2026, 3, 2, 12, 30, 5, 123456, tzinfo=UTC)


def block(rid, n, *, version=1, shadow=False, offset=0.0, labels=None):
    ages = np.arange(n, dtype=np.float32).reshape(-1, 1) + offset
    ages[0, 0] = np.nan if n > 1 else ages[0, 0]
    plan = np.array([["basic", "__missing__", "pro"][i % 3] for i in range(n)],
                    dtype=object).reshape(-1, 1)
    lab = np.arange(n, dtype=np.int64) % 2
    proba = np.stack([1 - lab * 0.75, lab * 0.75], axis=1).astype(np.float32)
    lab = lab if labels is None else labels
    return RequestBlock(rid, epoch_us(T), version, shadow, 1.25, {"age": ages, "plan": plan},
                        lab, proba)


def test_round_trip_rows_ids_and_missing_values():
    body = codec.encode("churn", [block("a", 3), block("b", 1, version=2, shadow=True)])
    chunk = codec.decode(body)
    assert chunk.n == 4 and chunk.schema["features"] == [["age", "numeric"],
                                                         ["plan", "categorical"]]
    rows = chunk.to_rows()
    assert [r["id"] for r in rows] == ["a#0", "a#1", "a#2", "b"]
    assert [r["request_id"] for r in rows] == ["a", "a", "a", "b"]
    assert [r["features"]["age"] for r in rows] == [None, 1.0, 2.0, 0.0]
    assert [r["features"]["plan"] for r in rows] == ["basic", None, "pro", "basic"]
    assert [r["prediction"] for r in rows] == [0, 1, 0, 0]
    assert rows[1]["probabilities"] == [0.25, 0.75]
    assert [(r["version"], r["role"]) for r in rows] == [(1, "served")] * 3 + [(2, "shadow")]
    assert rows[0]["at"] == T.isoformat() and rows[0]["latency_ms"] == 1.25
    assert chunk.ids() == ["a#0", "a#1", "a#2", "b"]


def test_one_record_requests_and_batches_keep_their_order():
    """One-record requests are gathered as values, batches kept as arrays: interleaved, the
    rows come back in arrival order, each with its own request's values."""
    blocks = [block("a", 1, offset=5.0), block("b", 1, offset=6.0), block("c", 3, offset=10.0),
              block("d", 1, offset=7.0), block("e", 2, offset=20.0)]
    rows = codec.decode(codec.encode("churn", blocks)).to_rows()
    assert [r["id"] for r in rows] == ["a", "b", "c#0", "c#1", "c#2", "d", "e#0", "e#1"]
    assert [r["features"]["age"] for r in rows] == [5.0, 6.0, None, 11.0, 12.0, 7.0, None, 21.0]
    assert [r["features"]["plan"] for r in rows] == ["basic", "basic", "basic", None, "pro",
                                                     "basic", "basic", None]
    assert [r["prediction"] for r in rows] == [0, 0, 0, 1, 0, 0, 0, 1]
    assert [r["probabilities"] for r in rows][2:4] == [[1.0, 0.0], [0.25, 0.75]]


def test_string_predictions_and_regression_values():
    regs = block("r", 2, labels=np.array([1.5, -2.0], dtype=np.float32))
    regs.probabilities = None
    assert codec.decode(codec.encode("m", [regs])).to_rows()[1][
        "prediction"] == -2.0
    strs = block("s", 2, labels=np.array(["yes", "no"], dtype=object))
    assert [r["prediction"] for r in codec.decode(
        codec.encode("m", [strs])).to_rows()] == ["yes", "no"]


def test_objects_hold_plain_arrays_and_hostile_ones_are_refused():
    body = codec.encode("churn", [block("a", 2)])
    header, arrays = codec.unpack(body)
    assert header["format"] == "mlops-kit-capture/1" and header["model"] == "churn"
    assert all(a.dtype.kind in "fiubS" for a in arrays.values())  # never an object array
    assert header["vocab"] == {"plan": ["basic"]}
    good = {"req.rows": np.array([1], np.int32)}
    evil = codec.pack({"format": "mlops-kit-capture/1"}, good)
    with pytest.raises(CaptureFormatError, match="incomplete"):
        codec.decode(evil)
    head = codec.pack({"format": "mlops-kit-capture/1"}, good).replace(b"<i4", b"|O8")
    with pytest.raises(CaptureFormatError, match="not allowed"):
        codec.decode(head)
    with pytest.raises(CaptureFormatError, match="runs past"):
        codec.decode(body[:-64])
    with pytest.raises(CaptureFormatError, match="magic"):
        codec.decode(b"PK\x03\x04 not ours")
    _, ok = codec.unpack(body)
    short = {**ok, "req.version": np.array([1, 1], np.int32)}
    with pytest.raises(CaptureFormatError, match="'req.version' does not match the 1 requests"):
        codec.decode(codec.pack(header, short))
    with pytest.raises(CaptureFormatError, match="'age' does not match the 2 rows"):
        codec.decode(codec.pack(header, {**ok, "f.age": ok["f.age"][:1]}))


def test_label_keys_match_exactly_the_row_id_strings():
    chunk = codec.decode(codec.encode(
        "m", [block("abc", 5), block("abc#3", 1), block("x#1", 1)]))
    keys = chunk.keys()
    lk, origin, _ = label_keys(["abc#3", "abc#03", "x#1", "abc"])
    by_label = {i: set(lk[origin == i].tolist()) for i in range(4)}
    ids = chunk.ids()
    # 'abc#3' names row 3 of batch 'abc' and the single request 'abc#3': the same string
    assert {ids[i] for i, k in enumerate(keys.tolist()) if k in by_label[0]} == {"abc#3"}
    assert sum(k in by_label[0] for k in keys.tolist()) == 2
    assert not any(k in by_label[1] for k in keys.tolist())  # 'abc#03' is no row id
    assert [ids[i] for i, k in enumerate(keys.tolist()) if k in by_label[2]] == ["x#1"]
    assert not any(k in by_label[3] for k in keys.tolist())  # batch rows are abc#i, not abc


def test_buffer_writes_one_object_per_schema_with_the_layout_key(backend):
    buf = CaptureBuffer(backend.ctx.store, FixedClock(T), max_rows=10)
    for i in range(3):
        buf.capture("churn", f"r{i}", T, 1, "served", 0.5, block("x", 2).feed,
                    np.array([0, 1]), np.array([[0.6, 0.4], [0.2, 0.8]], np.float32))
    other = {"age": np.ones((1, 1), np.float32)}  # another version with other features
    buf.capture("churn", "z", T, 2, "served", 0.5, other, np.array([1]), None)
    assert buf.due() is False and buf.flush() == 7
    keys = [i.key for i in backend.ctx.store.list("captures/churn/")]
    assert len(keys) == 2 and all(k.startswith("captures/churn/2026-03-02/12/20260302T123005-")
                                  and k.endswith(".cap") for k in keys)
    sizes = sorted(codec.decode(backend.ctx.store.get(k)).n for k in keys)
    assert sizes == [1, 6] and buf.flush() == 0


def test_column_buffers_grow_and_keep_arrival_order():
    """codec.Columns preallocates its column buffers and doubles them when full: one-record
    requests and batches, past the first capacity, decode to the same rows in arrival order
    as each request encoded alone."""
    blocks = [block("a", 1, offset=1), block("b", 5, offset=10), block("c", 1, offset=20),
              block("d", 1, offset=30, labels=np.array([1])), block("e", 9, offset=40)]
    columns = codec.Columns(blocks[0].feed, blocks[0].labels, blocks[0].probabilities,
                            capacity=2)
    for b in blocks:
        columns.add(b)
    assert len(columns) == 17 and columns._cap >= 17
    rows = codec.decode(columns.encode("churn")).to_rows()
    alone = [r for b in blocks for r in codec.decode(codec.encode("churn", [b])).to_rows()]
    assert [r["request_id"] for r in rows] == [r["request_id"] for r in alone]
    assert rows == alone
