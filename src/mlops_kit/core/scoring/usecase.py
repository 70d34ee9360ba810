"""Batch scoring: a file of records uploaded to scoring/<model>/<name>.csv|.parquet becomes
predictions/<model>/<name>/part-NNNNN.parquet, rejects.parquet and _manifest.json (written last).

Streamed in bounded memory: the dataset reader's batches (CSV blocks, Parquet row groups) are
cut into chunks of at most CHUNK_ROWS records, each validated by the request path itself
(Predictor.inputs_from_request: the column-wise validator, else the exact per-value one, the
same rules and messages as an HTTP request), scored with onnxruntime and appended to the part
being filled; a part is written when it holds PART_ROWS rows. A chunk the request path refuses
is bisected until each refused record stands alone, so one bad row costs log2(chunk) extra
validations and every good row around it is still scored.

Which version scores: `scoring/<model>/<name>.json` beside the file (upload it first) may say
{"version": 3} or {"alias": "challenger"} and {"keep": ["customer_id", ...]} (input columns
copied to the output); the default is the champion. A file that cannot be read (not CSV or
Parquet, a missing feature column) is quarantined with a report, as a dataset is; the original
is never deleted. Every job ends in a final state and a notification.

Idempotent under redelivery: parts are numbered by position in the file, so a rerun rewrites
the same keys; a manifest already written for the same input object (etag) answers at once.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import closing
from posixpath import basename
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_kit.core import layout
from mlops_kit.core.context import Context, to_json
from mlops_kit.core.datasets import (
    HashingReader,
    csv_batches,
    normalise,
    parquet_batches,
    read_csv_header,
    to_float,
    to_text,
)
from mlops_kit.core.missing import missing_markers
from mlops_kit.core.registry import CHAMPION
from mlops_kit.core.serving.predictor import MAX_BATCH, Predictor
from mlops_kit.core.serving.service import ModelService
from mlops_kit.core.spec import CategoricalFeature
from mlops_kit.errors import MlopsKitError, NotFound, SpecError, ValidationError, describe

CHUNK_ROWS = MAX_BATCH  # records validated and scored together (the request path's limit)
PART_ROWS = 100_000  # rows per output part
READ_BYTES = 8 << 20  # CSV block / Parquet batch size the reader aims at
MAX_REJECTS = 100_000  # rejected rows written out in full; beyond, counted only


class _Unreadable(Exception):
    """The file as a whole cannot be scored (format, header, a missing feature column)."""


def _options(ctx: Context, model: str, name: str) -> dict[str, Any]:
    key = layout.scoring_options_key(model, name)
    if not ctx.store.exists(key):
        return {}
    try:
        opts = json.loads(ctx.store.get(key))
    except ValueError:
        raise SpecError(f"{key}: not valid JSON", field="options") from None
    if not isinstance(opts, dict):
        raise SpecError(f"{key}: must be a JSON object", field="options")
    unknown = set(opts) - {"version", "alias", "keep"}
    if unknown:
        raise SpecError(f"{key}: unknown option {sorted(unknown)[0]!r} "
                        "(allowed: version, alias, keep)", field=sorted(unknown)[0])
    if "version" in opts and "alias" in opts:
        raise SpecError(f"{key}: give version or alias, not both", field="version")
    if "version" in opts and (type(opts["version"]) is not int or opts["version"] < 1):
        raise SpecError(f"{key}: version must be a positive integer", field="version")
    keep = opts.get("keep", [])
    if not isinstance(keep, list) or not all(isinstance(k, str) and k for k in keep):
        raise SpecError(f"{key}: keep must be a list of column names", field="keep")
    return opts


def _resolve(ctx: Context, model: str, opts: dict[str, Any]) -> tuple[int, str]:
    if "version" in opts:
        return int(opts["version"]), f"version {opts['version']}"
    alias = str(opts.get("alias", CHAMPION))
    pointer = ctx.registry.get_alias(model, alias) or {}
    if pointer.get("version") is None:
        raise NotFound(f"model {model!r} has no {alias}: nothing to score with", field="alias")
    return int(pointer["version"]), alias


def _columns(ctx: Context, key: str, wanted: list[str]) -> Iterator[dict[str, pa.Array]]:
    """Batches {column: array} of the wanted columns; _Unreadable for a file that is not one."""
    fmt = "parquet" if key.endswith((".parquet", ".pq")) else "csv"
    stream = ctx.store.open(key)
    with closing(stream):
        if fmt == "csv":
            head, names, error = read_csv_header(stream)
            if error or names is None:
                raise _Unreadable(error or "no header row")
            missing = [n for n in wanted if n not in names]
            if missing:
                raise _Unreadable(f"column {missing[0]!r} is missing from the file")

            def ragged(row: Any) -> str:
                raise _Unreadable(f"a row has {row.actual_columns} fields, expected "
                                  f"{row.expected_columns}")

            try:
                for batch in csv_batches(stream, head, names, wanted, READ_BYTES, ragged):
                    yield {n: batch.column(n) for n in wanted}
            except pa.ArrowInvalid as exc:
                raise _Unreadable(f"not a readable CSV file: {str(exc)[:200]}") from None
        else:
            def header(names: list[str]) -> bool:
                missing = [n for n in wanted if n not in names]
                if missing:
                    raise _Unreadable(f"column {missing[0]!r} is missing from the file")
                return True

            try:
                yield from parquet_batches(stream, wanted, READ_BYTES, header)
            except (pa.ArrowInvalid, OSError) as exc:
                raise _Unreadable(f"not a readable Parquet file: {str(exc)[:200]}") from None


def _records(predictor: Predictor, cols: dict[str, pa.Array], n: int
             ) -> tuple[list[dict[str, Any]], dict[int, tuple[str, str]]]:
    """Typed records (floats, text, None for missing), as a JSON request would carry them, and
    the rows whose value is not even of the feature's type ({row: (column, message)})."""
    values: dict[str, list] = {}
    bad_rows: dict[int, tuple[str, str]] = {}
    for f in predictor.spec.features:
        cats = f.categories if isinstance(f, CategoricalFeature) else None
        arr = normalise(cols[f.name], missing_markers(cats))
        if isinstance(f, CategoricalFeature):
            text, bad = to_text(arr)
            values[f.name] = text.to_pylist()
        else:
            vals, bad = to_float(arr)
            values[f.name] = [None if v != v else v for v in vals.tolist()]
        if bad is not None:
            for i in np.flatnonzero(bad).tolist():
                bad_rows.setdefault(i, (f.name, f"{f.name}: expected a "
                                        f"{'category' if cats is not None else 'number'}"))
    names = list(values)
    records = [dict(zip(names, row, strict=True)) for row in zip(*values.values(), strict=True)] \
        if names else [{} for _ in range(n)]
    return records, bad_rows


def _validate(predictor: Predictor, records: list[dict[str, Any]], rows: list[int]
              ) -> Iterator[tuple[list[int], dict[str, np.ndarray] | None, Any]]:
    """(rows, feed, None) for accepted runs of records, ([row], None, error) for each refused
    one: the request path's verdict, bisected down to the refused records."""
    try:
        yield rows, predictor.inputs_from_request(records), None
    except ValidationError as exc:
        if len(records) == 1:
            yield rows, None, exc
            return
        mid = len(records) // 2
        yield from _validate(predictor, records[:mid], rows[:mid])
        yield from _validate(predictor, records[mid:], rows[mid:])


class _Parts:
    """Output parts filled in order and written when full; rejects kept up to MAX_REJECTS."""

    def __init__(self, ctx: Context, model: str, name: str) -> None:
        self.ctx, self.model, self.name = ctx, model, name
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.keys: list[str] = []
        self.rows = 0
        self.rejects: list[dict[str, Any]] = []
        self.rejected = 0

    def add(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.pending_rows += table.num_rows
        self.rows += table.num_rows
        if self.pending_rows >= PART_ROWS:
            self.flush()

    def reject(self, row: int, column: str | None, message: str) -> None:
        self.rejected += 1
        if len(self.rejects) < MAX_REJECTS:
            self.rejects.append({"row": row, "column": column, "error": message})

    def flush(self) -> None:
        if not self.pending:
            return
        key = layout.predictions_part_key(self.model, self.name, len(self.keys))
        self.ctx.store.put(key, _parquet(pa.concat_tables(self.pending)),
                           content_type="application/vnd.apache.parquet")
        self.keys.append(key)
        self.pending, self.pending_rows = [], 0


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _output(predictor: Predictor, rows: list[int], first: int, labels: np.ndarray,
            proba: np.ndarray | None, kept: dict[str, pa.Array]) -> pa.Table:
    """`rows`: positions in the chunk that starts at row `first` of the file."""
    idx = pa.array(rows, pa.int64())
    out: dict[str, pa.Array] = {"row": pa.array(np.asarray(rows, dtype=np.int64) + first)}
    for col, arr in kept.items():
        out[col] = arr.take(idx)
    out["prediction"] = pa.array(labels.tolist())
    if proba is not None:
        classes = predictor.classes or list(range(proba.shape[1]))
        for j, cls in enumerate(classes):
            out[f"probability_{cls}"] = pa.array(proba[:, j].astype(np.float64))
    n = len(rows)
    out["model"] = pa.array([predictor.model] * n, pa.string())
    out["version"] = pa.array(np.full(n, predictor.version, dtype=np.int64))
    return pa.table(out)


def score_upload(ctx: Context, model: str, key: str, *, etag: str | None = None,
                 version_id: str | None = None) -> dict[str, Any]:
    """Score one uploaded file; returns the job's final outcome (also in _manifest.json)."""
    filename = basename(key)
    name = filename.rsplit(".", 1)[0]
    manifest_key = layout.predictions_manifest_key(model, name)
    info = ctx.store.head(key)
    etag = etag or info.etag
    if ctx.store.exists(manifest_key):
        done = json.loads(ctx.store.get(manifest_key))
        if done.get("input", {}).get("etag") == etag:
            return {**done, "status": "scored", "already": True, "manifest_key": manifest_key}
    started = time.monotonic()
    base: dict[str, Any] = {"model": model, "input": {"key": key, "etag": etag,
                                                     "version_id": version_id or info.version_id,
                                                     "size": info.size},
                            "started_at": ctx.clock.now().isoformat()}
    try:
        opts = _options(ctx, model, name)
        version, chosen_by = _resolve(ctx, model, opts)
        predictor = ModelService(ctx.store, ctx.registry).load_version(model, version)
    except (SpecError, NotFound) as exc:  # final: nothing to score with
        return _failed(ctx, model, key, base, exc)
    keep = [c for c in opts.get("keep", []) if c not in predictor.feature_names]
    wanted = list(predictor.feature_names) + keep
    parts = _Parts(ctx, model, name)
    rows_in = 0
    try:
        for cols in _columns(ctx, key, wanted):
            n = len(next(iter(cols.values())))
            kept = {c: normalise(cols[c], []).cast(pa.string()) for c in keep}
            for lo in range(0, n, CHUNK_ROWS):
                hi = min(n, lo + CHUNK_ROWS)
                chunk = {c: a.slice(lo, hi - lo) for c, a in cols.items()}
                chunk_kept = {c: a.slice(lo, hi - lo) for c, a in kept.items()}
                records, bad_rows = _records(predictor, chunk, hi - lo)
                for i, (col, message) in bad_rows.items():
                    parts.reject(rows_in + lo + i, col, message)
                good = [i for i in range(hi - lo) if i not in bad_rows]
                for sub, feed, error in _validate(predictor, [records[i] for i in good], good):
                    if feed is None:
                        message = str(error.message).removeprefix("instances[0]: ")
                        message = message.removeprefix("instances[0].")
                        parts.reject(rows_in + lo + sub[0], error.field, message)
                        continue
                    labels, proba = predictor.run_arrays(feed)
                    parts.add(_output(predictor, sub, rows_in + lo, labels, proba, chunk_kept))
            rows_in += n
        parts.flush()
    except _Unreadable as exc:
        return _quarantined(ctx, model, key, filename, base, str(exc))
    except (UnicodeDecodeError, ValidationError) as exc:
        return _quarantined(ctx, model, key, filename, base, describe(exc))
    rejects_key = None
    if parts.rejects:
        rejects_key = layout.predictions_rejects_key(model, name)
        ctx.store.put(rejects_key, _parquet(pa.Table.from_pylist(
            parts.rejects, schema=pa.schema([("row", pa.int64()), ("column", pa.string()),
                                             ("error", pa.string())]))))
    with closing(HashingReader(ctx.store.open(key))) as reader:
        sha256 = reader.drain()
    manifest = {
        **base, "status": "scored", "version": version, "chosen_by": chosen_by,
        "input": {**base["input"], "sha256": sha256},
        "rows_in": rows_in, "rows_scored": parts.rows, "rows_rejected": parts.rejected,
        "parts": parts.keys, "rejects": rejects_key, "keep": keep,
        "columns": ["row", *keep, "prediction",
                    *([f"probability_{c}" for c in predictor.classes or []]),
                    "model", "version"],
        "finished_at": ctx.clock.now().isoformat(),
        "seconds": round(time.monotonic() - started, 3),
    }
    ctx.store.put(manifest_key, to_json(manifest), content_type="application/json")
    ctx.notifier.publish(f"mlops-kit: {model} scored {filename}",
                         {"event": "scored", "model": model, "key": key, "version": version,
                          "rows_scored": parts.rows, "rows_rejected": parts.rejected,
                          "manifest": manifest_key})
    return {**manifest, "manifest_key": manifest_key}


def _failed(ctx: Context, model: str, key: str, base: dict[str, Any],
            exc: MlopsKitError) -> dict[str, Any]:
    outcome = {**base, "status": "failed", "final": True, "error": exc.message,
               "field": exc.field}
    ctx.notifier.publish(f"mlops-kit: scoring {basename(key)} for {model} failed",
                         {"event": "scoring_failed", "model": model, "key": key,
                          "error": exc.message})
    return outcome


def _quarantined(ctx: Context, model: str, key: str, filename: str, base: dict[str, Any],
                 reason: str) -> dict[str, Any]:
    qkey = layout.quarantine_key(model, f"scoring-{filename}")
    ctx.store.copy(key, qkey)  # a copy: the upload is never deleted
    report = {**base, "status": "quarantined", "passed": False, "reason": reason}
    ctx.store.put(qkey + ".report.json", to_json(report), content_type="application/json")
    ctx.notifier.publish(f"mlops-kit: scoring file for {model} quarantined",
                         {"event": "quarantined", "model": model, "key": key,
                          "quarantine_key": qkey, "reason": reason})
    return {**report, "final": True, "quarantine_key": qkey,
            "quarantine_report_key": qkey + ".report.json"}
