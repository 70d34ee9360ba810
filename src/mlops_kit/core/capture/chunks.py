"""Captured rows as columns (what monitoring and the Parquet compaction work on): numeric
features as float arrays, categorical ones as codes into a vocabulary, and row ids kept
factored (request id + position) so a 1M-row window never builds 1M id strings unless asked.
Late labels join on 64-bit keys of the row ids (label_keys / CaptureChunk.keys). numpy only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

_MIX = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Categorical:
    """A string column as codes into a small vocabulary; -1 is missing."""

    codes: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return int(self.codes.size)

    def __getitem__(self, index) -> Categorical:
        return Categorical(self.codes[index], self.values)

    def counts(self) -> tuple[dict[str, int], int]:
        """({value: count}, missing count), counted in C."""
        present = self.codes[self.codes >= 0]
        bins = np.bincount(present, minlength=self.values.size)
        nz = np.flatnonzero(bins)
        return ({str(self.values[i]): int(bins[i]) for i in nz},
                int(self.codes.size - present.size))

    def tolist(self) -> list[str | None]:
        vals = self.values.tolist() + [None]  # code -1 picks the trailing None
        return [vals[c] for c in self.codes.tolist()]


Column = np.ndarray | Categorical | list


@dataclass
class CaptureChunk:
    """Captured rows column by column. Row ids stay factored (request id + position), so a
    1M-row window never builds 1M id strings unless someone asks for them."""

    n: int
    features: dict[str, Column]
    version: np.ndarray  # int64 [n]
    shadow: np.ndarray  # bool [n]
    at_us: np.ndarray  # int64 [n]
    latency_ms: np.ndarray  # float32 [n]
    prediction: Column
    probabilities: np.ndarray | None
    request_ids: np.ndarray  # bytes (UTF-8) [R]
    request_of_row: np.ndarray  # int [n] -> index into request_ids
    position: np.ndarray  # int [n] row index inside its request
    single: np.ndarray  # bool [n] the request had one row (its id is the request id)
    schema: dict = field(default_factory=dict)

    def select(self, mask: np.ndarray) -> CaptureChunk:
        idx = np.flatnonzero(mask)
        if idx.size == self.n:
            return self
        return CaptureChunk(
            n=int(idx.size),
            features={k: take(v, idx) for k, v in self.features.items()},
            version=self.version[idx], shadow=self.shadow[idx], at_us=self.at_us[idx],
            latency_ms=self.latency_ms[idx], prediction=take(self.prediction, idx),
            probabilities=None if self.probabilities is None else self.probabilities[idx],
            request_ids=self.request_ids, request_of_row=self.request_of_row[idx],
            position=self.position[idx], single=self.single[idx], schema=self.schema)

    def keys(self) -> np.ndarray:
        """64-bit join keys of the row ids (label_keys gives the labels' keys)."""
        h = hash_ids(self.request_ids)
        if self.request_of_row.size == h.size and self.single.all():
            return h  # one row per request, in order (the common case): no gather
        h = h[self.request_of_row]
        return np.where(self.single, h, mix_position(h, self.position))

    def ids(self) -> list[str]:
        """Row ids as strings (what labels files name): request_id, or request_id#i."""
        rids = [r.decode() for r in self.request_ids.tolist()]
        return [rids[r] if s else f"{rids[r]}#{p}" for r, p, s in
                zip(self.request_of_row.tolist(), self.position.tolist(), self.single.tolist(),
                    strict=True)]

    def to_rows(self) -> list[dict[str, Any]]:
        """The rows as dicts, in the shape JSON-lines captures had (tools and tests; monitoring
        stays on the columns)."""
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        rids = [r.decode() for r in self.request_ids.tolist()]
        feats = {k: values_of(v) for k, v in self.features.items()}
        preds = values_of(self.prediction)
        probs = None if self.probabilities is None else \
            np.round(self.probabilities.astype(np.float64), 6).tolist()
        out = []
        for i, (rid, at, lat) in enumerate(zip(
                self.request_of_row.tolist(), self.at_us.tolist(), self.latency_ms.tolist(),
                strict=True)):
            row: dict[str, Any] = {
                "id": rids[rid] if self.single[i] else f"{rids[rid]}#{int(self.position[i])}",
                "request_id": rids[rid],
                "at": (epoch + timedelta(microseconds=at)).isoformat(),
                "model": self.schema.get("model"), "version": int(self.version[i]),
                "role": "shadow" if self.shadow[i] else "served",
                "latency_ms": round(lat, 3),
                "features": {k: v[i] for k, v in feats.items()}, "prediction": preds[i]}
            if probs is not None:
                row["probabilities"] = probs[i]
            out.append(row)
        return out


def values_of(column: Column) -> list:
    """A column as Python values, missing as None."""
    if isinstance(column, Categorical):
        return column.tolist()
    if isinstance(column, np.ndarray):
        out = column.tolist()
        return [None if isinstance(v, float) and v != v else v for v in out]
    return list(column)


def take(column: Column, idx: np.ndarray) -> Column:
    if isinstance(column, list):
        return [column[i] for i in idx.tolist()]
    return column[idx]


_P = np.uint64(0xFF51AFD7ED558CCD)


def hash_ids(ids: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each id (UTF-8 bytes, an 'S' array), computed over 8-byte words in
    numpy: one pass per word, not one Python call per id (1M ids: ~20 ms, not ~300 ms).
    Deterministic across processes; all-zero (padding) words are skipped, so the array's
    width does not change a hash."""
    n = ids.size
    if not n:
        return np.empty(0, dtype=np.int64)
    ids = np.asarray(ids)
    if ids.dtype.kind != "S":
        ids = ids.astype(bytes)
    width = ids.dtype.itemsize
    if width % 8:
        ids = ids.astype(f"S{width + (-width % 8)}")
    words = np.ascontiguousarray(ids).view("<u8").reshape(n, -1)
    h = np.full(n, 0x9E3779B97F4A7C15, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1]):
            w = words[:, j]
            mixed = (h ^ w) * _P
            mixed ^= mixed >> np.uint64(29)
            h = np.where(w != 0, mixed, h)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
    return h.view(np.int64)


def _utf8(ids: Sequence[str]) -> np.ndarray:
    return np.array([s.encode() for s in ids], dtype=bytes) if len(ids) else \
        np.empty(0, dtype="S8")


def mix_position(h: np.ndarray, position: np.ndarray) -> np.ndarray:
    """The key of row `position` inside a batch request whose id hashes to h."""
    with np.errstate(over="ignore"):
        return (h.astype(np.uint64) * _MIX + position.astype(np.uint64) + np.uint64(1)) \
            .view(np.int64)


def label_keys(ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, index of the id each key came from, is-primary). A label id 'abc#3' may name row 3
    of batch request 'abc' or a single request 'abc#3' (the same string either way), so it gets
    both keys: exactly the string equality the row ids had when they were spelled out."""
    keys = hash_ids(_utf8(ids))
    extra_from: list[int] = []
    extra_rid: list[bytes] = []
    extra_pos: list[int] = []
    for i, s in enumerate(ids):
        if "#" in s:
            rid, _, pos = s.rpartition("#")
            if pos.isascii() and pos.isdigit() and len(pos) < 10 and str(int(pos)) == pos:
                extra_from.append(i)
                extra_rid.append(rid.encode())
                extra_pos.append(int(pos))
    origin = np.arange(len(ids), dtype=np.int64)
    if not extra_from:
        return keys, origin, np.ones(len(ids), dtype=bool)
    h = hash_ids(np.array(extra_rid, dtype=bytes))
    mixed = mix_position(h, np.asarray(extra_pos, dtype=np.int64))
    return (np.concatenate([keys, mixed]),
            np.concatenate([origin, np.asarray(extra_from, dtype=np.int64)]),
            np.concatenate([np.ones(len(ids), dtype=bool), np.zeros(len(extra_from), dtype=bool)]))


def id_keys(ids: Sequence[str]) -> np.ndarray:
    """Keys of row ids spelled out (the primary key label_keys gives the same string)."""
    return hash_ids(_utf8(ids))


def chunk_from_rows(rows: list[dict[str, Any]], at_us: Sequence[int]) -> CaptureChunk:
    """Legacy JSON-lines rows (already parsed, `at` already turned into microseconds) -> one
    CaptureChunk. Each row is its own 'request' named by its row id."""
    n = len(rows)
    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(r.get("features") or {}))
    feats = [r.get("features") or {} for r in rows]
    features: dict[str, Column] = {k: [f.get(k) for f in feats] for k in names}
    probs = [r.get("probabilities") for r in rows]
    proba = None
    if n and all(isinstance(p, list) and p for p in probs) \
            and len({len(p) for p in probs if isinstance(p, list)}) == 1:
        proba = np.asarray(probs, dtype=np.float32)
    roles = [r.get("role") for r in rows]
    return CaptureChunk(
        n=n, features=features,
        version=np.array([_int(r.get("version")) for r in rows], dtype=np.int64),
        shadow=np.array([x == "shadow" for x in roles], dtype=bool),
        at_us=np.asarray(at_us, dtype=np.int64),
        latency_ms=np.array([_float(r.get("latency_ms")) for r in rows], dtype=np.float32),
        prediction=[r.get("prediction") for r in rows], probabilities=proba,
        request_ids=np.array([str(r.get("id")).encode() for r in rows], dtype=bytes),
        request_of_row=np.arange(n), position=np.zeros(n, dtype=np.int64),
        single=np.ones(n, dtype=bool), schema={"format": "jsonl"})


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return -1


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")
