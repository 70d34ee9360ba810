"""Compaction of captured requests to Parquet, so standard tools query them (docs/captures.md).

The serve side writes small columnar objects (core.capture.codec, numpy only); once an hour
is closed, the monitor function rewrites that hour's objects as Parquet under
captures/<model>/parquet/dt=<YYYY-MM-DD>/hour=<HH>/ (Hive-style partitions for Athena, DuckDB
and Spark), one row per captured row, ids spelled out. It lives outside core.monitoring,
which stays numpy-only; the monitor function ships pyarrow (the validate function needs it).

Idempotent and bounded: an hour is compacted once (its manifest is written last, and
query engines skip names starting with `_`); a re-run after a crash rewrites the same parts
(the same inputs in key order give the same parts); at most PART_ROWS rows are held at once.
The raw objects stay where they are (the monitor reads them; the bucket's lifecycle expires
both)."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlops_kit.core import layout
from mlops_kit.core.capture import codec
from mlops_kit.core.capture.chunks import CaptureChunk, Categorical, chunk_from_rows
from mlops_kit.core.capture.codec import CaptureFormatError

log = logging.getLogger("mlops_kit.captures")
PART_ROWS = 250_000
GRACE = timedelta(minutes=10)  # a flush stamped 12:59:59 may land a little after 13:00


def chunk_table(chunk: CaptureChunk, model: str) -> pa.Table:
    """One capture chunk as an Arrow table: one row per captured row."""
    rids = pa.array(chunk.request_ids.tolist(), type=pa.binary()).cast(pa.string())
    rid = rids.take(pa.array(chunk.request_of_row))
    ids = pc.if_else(pa.array(chunk.single), rid,
                     pc.binary_join_element_wise(rid, pc.cast(pa.array(chunk.position),
                                                              pa.string()), "#"))
    cols: dict[str, pa.Array] = {
        "id": ids,
        "request_id": rid,
        "at": pa.array(chunk.at_us, type=pa.timestamp("us", tz="UTC")),
        "model": pa.array([model] * chunk.n, type=pa.string()),
        "version": pa.array(chunk.version, type=pa.int32()),
        "role": pc.if_else(pa.array(chunk.shadow), "shadow", "served"),
        "latency_ms": pa.array(chunk.latency_ms, type=pa.float32()),
    }
    for name, column in chunk.features.items():
        cols[name] = _arrow(column)
    cols["prediction"] = _arrow(chunk.prediction)
    if chunk.probabilities is not None:
        p = np.ascontiguousarray(chunk.probabilities, dtype=np.float32)
        cols["probabilities"] = pa.FixedSizeListArray.from_arrays(
            pa.array(p.reshape(-1)), p.shape[1]).cast(pa.list_(pa.float32()))
    return pa.table(cols)


def _arrow(column: Any) -> pa.Array:
    if isinstance(column, Categorical):
        idx = pa.array(column.codes, mask=column.codes < 0)
        return pa.DictionaryArray.from_arrays(idx, pa.array(column.values.tolist(),
                                                            type=pa.string())).cast(pa.string())
    if isinstance(column, np.ndarray):
        return pa.array(column, from_pandas=True)  # NaN -> null: SQL sees missing as NULL
    try:  # legacy JSON values
        return pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in column], type=pa.string())


def _hour_start(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def compact_hour(store, model: str, hour: datetime) -> dict[str, Any]:
    """Rewrite one hour's raw captures as Parquet parts + the manifest. Returns the manifest."""
    hour = _hour_start(hour)
    raw = [i for i in store.list(layout.capture_hour_prefix(model, hour))
           if i.key.endswith((codec.SUFFIX, codec.LEGACY_SUFFIX))]
    parts: list[dict[str, Any]] = []
    pending: list[pa.Table] = []
    held = 0
    unreadable = 0

    def write() -> None:
        nonlocal pending, held
        if not pending:
            return
        table = pa.concat_tables(pending, promote_options="permissive")
        key = layout.capture_parquet_key(model, hour, len(parts))
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="snappy")
        store.put(key, sink.getvalue(), content_type="application/vnd.apache.parquet")
        parts.append({"key": key, "rows": table.num_rows})
        pending, held = [], 0

    for info in raw:
        try:
            chunks = _read(store, info.key)
        except CaptureFormatError as exc:
            unreadable += 1
            log.warning("compaction skips %s: %s", info.key, exc)
            continue
        for chunk in chunks:
            pending.append(chunk_table(chunk, model))
            held += chunk.n
            if held >= PART_ROWS:
                write()
    write()
    manifest = {"model": model, "hour": hour.isoformat(), "parts": parts,
                "rows": sum(p["rows"] for p in parts), "sources": len(raw),
                "unreadable": unreadable}
    store.put(layout.capture_parquet_manifest_key(model, hour),
              json.dumps(manifest, indent=1).encode(), content_type="application/json")
    return manifest


def _read(store, key: str) -> list[CaptureChunk]:
    if key.endswith(codec.SUFFIX):
        return [codec.decode(store.get(key))]
    rows = [json.loads(line) for line in store.get(key).splitlines() if line.strip()]
    rows = [r for r in rows if isinstance(r, dict)]
    times = []
    for r in rows:
        try:
            at = datetime.fromisoformat(r["at"])
            times.append(int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1e6))
        except (KeyError, TypeError, ValueError):
            times.append(0)
    return [chunk_from_rows(rows, times)] if rows else []


def compact_captures(store, model: str, now: datetime, *, lookback_hours: int = 48) -> list[dict]:
    """Compact every closed hour of the last `lookback_hours` that has raw captures and no
    manifest yet (the monitor function calls this each run). Returns the new manifests."""
    done = []
    last = _hour_start(now - GRACE) - timedelta(hours=1)  # the newest closed hour
    hour = last - timedelta(hours=lookback_hours - 1)
    # one listing of the compacted side, then a raw listing only for hours not compacted yet
    compacted = {i.key for i in store.list(layout.capture_parquet_prefix(model))
                 if i.key.endswith("/_manifest.json")}
    while hour <= last:
        if layout.capture_parquet_manifest_key(model, hour) not in compacted and any(
                True for _ in store.list(layout.capture_hour_prefix(model, hour))):
            done.append(compact_hour(store, model, hour))
        hour += timedelta(hours=1)
    return done


def compact_all(store, models, now: datetime) -> dict[str, Any]:
    """compact_captures for every model, each isolated: a model that fails (a transient store
    error, a bug) is listed in `errors` and retried by the next run (its manifest is missing)."""
    hours: list[dict] = []
    errors: list[dict[str, Any]] = []
    for model in list(models):
        try:
            hours += [{"model": model, "hour": m["hour"], "rows": m["rows"]}
                      for m in compact_captures(store, model, now)]
        except Exception as exc:  # noqa: BLE001 - one model never stops the others
            log.warning("compacting captures of %s failed: %s", model, exc)
            errors.append({"model": model, "error": f"{type(exc).__name__}: {exc}"[:500]})
    return {"hours": hours, "errors": errors}
