"""The capture object: what the serve side writes per flush (one model, one feature schema) and
monitoring and the Parquet compaction read. numpy only: serving imports no pyarrow.

Chosen by measurement (bench/capture_formats.py, against JSON lines, .npz, Arrow IPC and
Parquet): a JSON header and the raw little-endian arrays, 8-byte aligned. Writing is a
`tobytes()` per column; reading is one JSON parse and a zero-copy `np.frombuffer` per column
(.npz parses a header per member with `ast`: ~20x slower to read). Never pickled.

    b"MKCAPT01" | uint32 LE header length | header JSON | padding | arrays

Header: {"format": "mlops-kit-capture/1", "model", "features": [[name, "numeric" |
"categorical"], ...], "prediction": "number" | "category", "vocab": {column: [values]},
"arrays": {name: [dtype, shape, offset]}} with the arrays

  req.id          S [R]        request ids, UTF-8 (late labels join on the row ids)
  req.rows        int32 [R]    rows per request (a row's id: the request id, or id#i in a batch)
  req.at_us       int64 [R]    request time, microseconds since the epoch (UTC)
  req.version     int32 [R]    the model version that answered
  req.shadow      bool [R]     a shadow model's answer (never returned to the client)
  req.latency_ms  float32 [R]
  f.<name>        float32 [N]  a numeric feature, NaN = missing
  c.<name>        int32 [N]    a categorical feature: codes into vocab[name], -1 = missing
  prediction      int64 | float64 [N], or c.prediction + vocab["prediction"]
  probabilities   float32 [N, classes] (classifiers)
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import struct
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops_kit.core.capture.chunks import CaptureChunk, Categorical, Column

FORMAT = "mlops-kit-capture/1"
SUFFIX = ".cap"
LEGACY_SUFFIX = ".jsonl"
MAGIC = b"MKCAPT01"
MISSING_CATEGORY = "__missing__"  # features.MISSING_CATEGORY (the serving encoding)
_ALLOWED = {"<f4", "<f8", "<i4", "<i8", "|b1"}  # + |S<n>; never object
_LEN = struct.Struct("<I")
_I32 = struct.Struct("<i")
_MISSING_CODE = (-1).to_bytes(4, "little", signed=True)
# one-record requests settled per slice, between a background flush's GIL yields
SETTLE_SLICE = 128


class CaptureFormatError(ValueError):
    pass


@dataclass(slots=True)
class RequestBlock:
    """One served request as the arrays it was scored with (what the capture buffer holds)."""

    request_id: str
    at_us: int
    version: int
    shadow: bool
    latency_ms: float
    feed: dict[str, np.ndarray]  # feature -> [n, 1] (float32 numeric, object categorical)
    labels: np.ndarray  # [n] predictions (int64, float, str or object)
    probabilities: np.ndarray | None  # [n, classes]

    @property
    def size(self) -> int:
        return len(self.labels)

    def schema_key(self) -> tuple:
        return schema_key(self.feed, self.labels, self.probabilities)


def encode_categorical(arr: np.ndarray | list, missing: str = MISSING_CATEGORY) -> Categorical:
    """Values -> codes + vocabulary (first-seen order); `missing` (the serving sentinel), None
    and '' -> -1. One pass over the values, in C: each value is looked up in a dict of 4-byte
    codes whose missing entries (a defaultdict's factory, itself a C iterator) hand out the
    next code as a value is first seen, and the joined bytes are the int32 array. 2,000 values
    of 3 categories: ~8% faster than the vocabulary pass (dict.fromkeys) + itemgetter lookups
    it replaces, which took ~60 µs of a 2,000-row flush's encode per column."""
    values = arr if isinstance(arr, list) else np.asarray(arr).reshape(-1).tolist()
    index: defaultdict[Any, bytes] = defaultdict(map(_I32.pack, itertools.count()).__next__)
    index[None] = index[missing] = index[""] = _MISSING_CODE  # seeded: no code taken
    seeded = len(index)
    raw = b"".join(map(index.__getitem__, values))
    vocab = list(index)[seeded:]
    return Categorical(np.frombuffer(raw, dtype="<i4").astype(np.int32),
                       np.array([v.decode() if isinstance(v, bytes) else str(v)
                                 for v in vocab], dtype=str))


def schema_key(feed: dict[str, np.ndarray], labels: np.ndarray,
               probabilities: np.ndarray | None) -> tuple:
    """What fixes a capture object's layout: features and their kinds, the prediction's kind,
    the number of classes."""
    return (tuple((k, v.dtype.kind == "f") for k, v in feed.items()),
            labels.dtype.kind in "fiub",
            None if probabilities is None else probabilities.shape[1])


class Columns:
    """The rows of one capture object (requests of one schema) as they are captured, in
    preallocated numpy column buffers, so a flush only slices them. A batch's arrays are
    copied in place (one slice assignment per column). A one-record request keeps references
    to the arrays it was scored with (its feed's arrays, labels, probabilities: already built,
    never changed after scoring), one tuple of them per request taken by one itemgetter call,
    and they are copied into the buffers, in arrival order, by the next batch or the flush's
    encode (one np.concatenate per column for all of them): scalar stores per column cost the
    request ~22,000 instructions (valgrind), the references a few hundred. Arrays are not
    tracked by the garbage collector and the tuples holding them are untracked by its young
    generations' passes, before they reach the oldest: the held rows add nothing to its full
    collections (the feed dict itself is not kept: holding it cost 30x more in a loop).
    The per-request facts (id, rows, time, version, shadow, latency) are one tuple in one
    list. The buffers double when full (amortised), starting at `capacity` rows (the
    buffer's flush size)."""

    __slots__ = ("features", "numeric", "requests", "size", "label_kind", "has_proba",
                 "classes", "_cols", "_labels", "_proba", "_cap", "_stored", "_singles",
                 "_take")

    def __init__(self, feed: dict[str, np.ndarray], labels: np.ndarray,
                 probabilities: np.ndarray | None, capacity: int = 256) -> None:
        self.features = list(feed)
        self.numeric = [feed[n].dtype.kind == "f" for n in self.features]
        # (request id, rows, at_us, version, shadow, latency_ms) per request
        self.requests: list[tuple[str, int, int, int, bool, float]] = []
        self.size = 0  # rows appended
        self._stored = 0  # rows copied into the buffers (the rest: _singles)
        self._singles: list[tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray | None]] = []
        # a feed's arrays in feature order, always a tuple (itemgetter of one key is the value)
        self._take: Callable[[dict[str, np.ndarray]], tuple[np.ndarray, ...]] = \
            operator.itemgetter(*self.features) if len(self.features) > 1 else \
            _one_of(self.features[0])
        self.label_kind = labels.dtype.kind
        self.has_proba = probabilities is not None
        self.classes = probabilities.shape[1] if probabilities is not None else 0
        cap = self._cap = max(int(capacity), len(labels), 1)
        self._cols = [np.empty(cap, np.float32 if num else object) for num in self.numeric]
        self._labels = np.empty(cap, np.float64 if self.label_kind == "f" else np.int64
                                if self.label_kind in "iub" else object)
        self._proba = np.empty((cap, self.classes), np.float32) if self.has_proba else None

    def __len__(self) -> int:
        return self.size

    def _grow(self, need: int) -> None:
        cap = max(2 * self._cap, need)
        n = self._stored

        def grown(a: np.ndarray) -> np.ndarray:
            out = np.empty((cap, *a.shape[1:]), a.dtype)
            out[:n] = a[:n]
            return out

        self._cols = [grown(c) for c in self._cols]
        self._labels = grown(self._labels)
        if self._proba is not None:
            self._proba = grown(self._proba)
        self._cap = cap

    def append(self, request_id: str, at_us: int, version: int, shadow: bool,
               latency_ms: float, feed: dict[str, np.ndarray], labels: np.ndarray,
               probabilities: np.ndarray | None) -> int:
        """Returns the rows appended."""
        n = len(labels)
        self.requests.append((request_id, n, at_us, version, shadow, latency_ms))
        self.size += n
        if n == 1:  # the common request: its arrays, copied later with the others
            self._singles.append((self._take(feed), labels, probabilities))
            return 1
        if self._singles:
            self._settle()
        self._store(n, [feed[name] for name in self.features], labels, probabilities)
        return n

    def _store(self, n: int, columns: list[np.ndarray], labels: np.ndarray,
               probabilities: np.ndarray | None) -> None:
        i = self._stored
        j = i + n
        if j > self._cap:
            self._grow(j)
        for col, values in zip(self._cols, columns, strict=True):
            col[i:j] = values.reshape(-1)
        self._labels[i:j] = labels.reshape(-1)
        if probabilities is not None and self._proba is not None:
            self._proba[i:j] = probabilities.reshape(n, -1)
        self._stored = j

    def _settle(self, pause: Callable[[], object] | None = None) -> None:
        """Copy the one-record requests held by reference into the buffers, in order, in
        slices of SETTLE_SLICE requests with `pause` between them (a background flush's GIL
        yield: a request thread waits for one slice, ~0.1 ms for 7 features, never the
        interpreter's 5 ms switch interval). Each column's values as one list of scalars
        (.item() in a list comprehension: ~90 ns a value with the store, vs ~250 ns per
        array for np.concatenate). Copying from the base arrays that the decoder's
        one-record feeds are views of was tried and not kept: checking that every feed
        really is such views (needed: other paths hold other arrays) costs what the copy
        saves (2,000 requests: 1.80 vs 1.75 ms forest, 2.33 vs 2.08 ms demo)."""
        singles, self._singles = self._singles, []
        i = self._stored
        j = i + len(singles)
        if j > self._cap:
            self._grow(j)
        lo = i
        while singles:
            # taken off the list slice by slice: freeing the requests' arrays (~0.2 µs each,
            # 18,000 for 2,000 forest requests) is spread over the slices too
            part = singles[:SETTLE_SLICE]
            del singles[:SETTLE_SLICE]
            hi = lo + len(part)
            for col, arrays in zip(self._cols, zip(*[f for f, _, _ in part], strict=True),
                                   strict=True):
                col[lo:hi] = [a.item() for a in arrays]
            self._labels[lo:hi] = [lab.item() for _, lab, _ in part]
            if self._proba is not None:
                self._proba[lo:hi] = np.concatenate([p for _, _, p in part])
            del part, arrays
            lo = hi
            if pause is not None:
                pause()
        self._stored = j

    def add(self, block: RequestBlock) -> None:
        self.append(block.request_id, block.at_us, block.version, block.shadow,
                    block.latency_ms, block.feed, block.labels, block.probabilities)

    def encode(self, model: str, pause: Callable[[], object] | None = None) -> bytes:
        """pause: called between slices and columns (a background flush passes a GIL yield,
        so the threads answering requests never wait for a whole encode)."""
        if self._singles:
            self._settle(pause)
        n = self.size
        ids, rows, at_us, versions, shadow, latency = zip(*self.requests, strict=True) \
            if self.requests else ((),) * 6
        req_ids = np.array([i.encode() for i in ids], dtype=bytes)
        if pause is not None:  # the transpose and the ids: ~0.3 ms for 2,000 requests
            pause()
        arrays: dict[str, np.ndarray] = {
            "req.id": req_ids,
            "req.rows": np.array(rows, dtype=np.int32),
            "req.at_us": np.array(at_us, dtype=np.int64),
            "req.version": np.array(versions, dtype=np.int32),
            "req.shadow": np.array(shadow, dtype=bool),
            "req.latency_ms": np.array(latency, dtype=np.float32),
        }
        if pause is not None:
            pause()
        features, vocab = [], {}
        for col, name, numeric in zip(self._cols, self.features, self.numeric, strict=True):
            if numeric:
                arrays[f"f.{name}"] = col[:n]
                features.append([name, "numeric"])
            else:
                cat = encode_categorical(col[:n].tolist())
                arrays[f"c.{name}"], vocab[name] = cat.codes, cat.values.tolist()
                features.append([name, "categorical"])
                if pause is not None:
                    pause()
        if self.label_kind in "fiub":
            arrays["prediction"] = self._labels[:n]
            kind = "number"
        else:
            cat = encode_categorical(self._labels[:n].tolist())
            arrays["c.prediction"], vocab["prediction"] = cat.codes, cat.values.tolist()
            kind = "category"
        if self._proba is not None:
            arrays["probabilities"] = self._proba[:n]
        if pause is not None:
            pause()
        return pack({"format": FORMAT, "model": model, "features": features, "prediction": kind,
                     "vocab": vocab}, arrays)


def _one_of(name: str) -> Callable[[dict[str, np.ndarray]], tuple[np.ndarray, ...]]:
    def take(feed: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        return (feed[name],)
    return take


def encode(model: str, blocks: Sequence[RequestBlock]) -> bytes:
    """One capture object for requests that share a schema (RequestBlock.schema_key)."""
    first = blocks[0]
    columns = Columns(first.feed, first.labels, first.probabilities,
                      sum(b.size for b in blocks))
    for block in blocks:
        columns.add(block)
    return columns.encode(model)


def pack(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    layout: dict[str, list] = {}
    parts: list[Any] = []  # bytes and C-contiguous arrays (buffers)
    offset = 0
    for name, arr in arrays.items():
        # the arrays themselves go to the join (their buffers, C-contiguous): one copy of
        # each into the object, not tobytes() + padding + join's three
        raw = np.ascontiguousarray(arr)
        layout[name] = [arr.dtype.str, list(arr.shape), offset]
        size = raw.nbytes
        parts.append(raw)
        if pad := -size % 8:
            parts.append(b"\0" * pad)
        offset += size + pad
    head = json.dumps({**header, "arrays": layout}, separators=(",", ":")).encode()
    head += b" " * (-(len(MAGIC) + 4 + len(head)) % 8)
    return b"".join([MAGIC, _LEN.pack(len(head)), head, *parts])


def unpack(body: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, arrays) of a capture object; arrays are read-only views of `body`. Checks every
    bound and dtype: a corrupt or hostile object is a CaptureFormatError, never a crash."""
    if body[:len(MAGIC)] != MAGIC or len(body) < len(MAGIC) + 4:
        raise CaptureFormatError("not a capture object (bad magic)")
    (n,) = _LEN.unpack_from(body, len(MAGIC))
    start = len(MAGIC) + 4 + n
    try:
        header = json.loads(body[len(MAGIC) + 4:start])
        layout = header["arrays"]
        if header.get("format") != FORMAT:
            raise CaptureFormatError(f"unknown capture format {header.get('format')!r}")
        arrays = {}
        for name, (dtype, shape, offset) in layout.items():
            dt = np.dtype(dtype)
            if dtype not in _ALLOWED and not (dt.kind == "S" and dtype.startswith("|S")):
                raise CaptureFormatError(f"array {name!r}: dtype {dtype!r} not allowed")
            count = math.prod(shape) if all(type(d) is int for d in shape) else -1
            lo = start + int(offset)
            if count < 0 or offset < 0 or lo + count * dt.itemsize > len(body):
                raise CaptureFormatError(f"array {name!r} runs past the object")
            arrays[name] = np.frombuffer(body, dtype=dt, count=count, offset=lo).reshape(shape)
        return header, arrays
    except CaptureFormatError:
        raise
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise CaptureFormatError(f"not a capture object: {exc}") from None


def decode(body: bytes) -> CaptureChunk:
    header, a = unpack(body)
    try:
        rows = a["req.rows"].astype(np.int64)
        n = int(rows.sum())
        for name in ("req.id", "req.at_us", "req.version", "req.shadow", "req.latency_ms"):
            if a[name].shape != rows.shape:
                raise CaptureFormatError(f"array {name!r} does not match the {rows.size} requests")
        vocab = header.get("vocab") or {}
        features: dict[str, Column] = {}
        for name, kind in header["features"]:
            features[name] = a[f"f.{name}"] if kind == "numeric" else \
                Categorical(a[f"c.{name}"], np.array(vocab[name], dtype=str))
        prediction: Column = a["prediction"] if header["prediction"] == "number" else \
            Categorical(a["c.prediction"], np.array(vocab["prediction"], dtype=str))
        if n == rows.size:  # one row per request (1-record traffic): nothing to expand
            per_row = a["req.version"].astype(np.int64), a["req.shadow"], a["req.at_us"], \
                a["req.latency_ms"], np.arange(n), np.zeros(n, np.int64), np.ones(n, bool)
        else:
            per_row = (np.repeat(a["req.version"].astype(np.int64), rows),
                       np.repeat(a["req.shadow"], rows), np.repeat(a["req.at_us"], rows),
                       np.repeat(a["req.latency_ms"], rows),
                       np.repeat(np.arange(rows.size), rows),
                       np.arange(n) - np.repeat(np.cumsum(rows) - rows, rows),
                       np.repeat(rows == 1, rows))
        version, shadow, at_us, latency, request_of_row, position, single = per_row
        chunk = CaptureChunk(
            n=n, features=features, version=version, shadow=shadow, at_us=at_us,
            latency_ms=latency, prediction=prediction, probabilities=a.get("probabilities"),
            request_ids=a["req.id"], request_of_row=request_of_row, position=position,
            single=single, schema=header)
    except CaptureFormatError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise CaptureFormatError(f"capture object is incomplete: {exc}") from None
    for name, col in [*features.items(), ("prediction", prediction)]:
        if len(col) != n or (isinstance(col, Categorical) and col.codes.size and (
                col.codes.max() >= col.values.size or col.codes.min() < -1)):
            raise CaptureFormatError(f"column {name!r} does not match the {n} rows")
    return chunk
