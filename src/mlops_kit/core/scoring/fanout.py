"""Scale out: a file over the context's scoring_chunk_bytes is split into chunks, one message
each on the queue the upload came through (the validate queue), each scored by whichever
function instance takes it; the one that completes the set writes the manifest.

- CSV: byte ranges, cut by the planner at line breaks outside quoted values (quoting as
  pyarrow's reader does it, which reads each chunk with newlines_in_values: see _Bounds); the
  first starts after the header, which is read once and passed along in every message.
- Parquet: consecutive row groups adding up to about the chunk size (a row group is never
  split: a file written as one row group is one chunk).

Each chunk reads only its range (ObjectStore.get_range), writes its parts numbered from
chunk * PART_STRIDE (deterministic: a redelivery rewrites the same keys) and its rejected rows
to _rejects/chunk-NNNNN.parquet, then is recorded with the job's counter in one conditional
transaction (core/scoring/records.py, as experiment trials are): a redelivered chunk counts
once, and the writer that brings `done` to `total` merges the rejects and writes the manifest,
once. A chunk that finds its file unreadable ends the whole job quarantined.

Output rows carry `chunk` and `row` (the row within its chunk: a CSV chunk does not know how
many rows come before it); the manifest's `chunks[i].first_row` turns (chunk, row) into the
row of the file. The planner streams the object once (the bounds need it anyway): the
manifest's input sha256 is the whole object's, as the whole-file path's is.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from posixpath import basename
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlops_kit.core import layout
from mlops_kit.core.context import Context, to_json
from mlops_kit.core.datasets import HashingReader, read_csv_header
from mlops_kit.core.scoring.engine import (
    MAX_REJECTS,
    PART_STRIDE,
    REJECT_SCHEMA,
    Parts,
    RangeReader,
    Unreadable,
    Window,
    flush_sample,
    fmt_of,
    output_columns,
    sample_for,
    score_window,
    to_parquet,
)
from mlops_kit.core.scoring.records import QUARANTINED, RUNNING, SCORED, ScoringJobs
from mlops_kit.core.serving.predictor import Predictor
from mlops_kit.core.serving.service import ModelService
from mlops_kit.errors import NotFound, RegistryConflict, SpecError, ValidationError, describe

SCAN_BYTES = 8 << 20  # the planner streams the object in blocks of this size
MESSAGE = "score_chunk"  # a validate-queue message {"score_chunk": {...}} is one chunk


def plan(ctx: Context, key: str, size: int, wanted: list[str], chunk_bytes: int
         ) -> Plan:
    """The chunks ([{"index", "start", "end"} | {"index", "row_groups": [a, b]}]), the CSV
    header line and the whole object's sha256.
    Unreadable for a file that cannot be scored (caught before any message is sent)."""
    if fmt_of(key) == "csv":
        with closing(io.BufferedReader(RangeReader(ctx.store, key, 0, size))) as f:
            head, names, error = read_csv_header(f)
        if error or names is None:
            raise Unreadable(error or "no header row")
        missing = [n for n in wanted if n not in names]
        if missing:
            raise Unreadable(f"column {missing[0]!r} is missing from the file")
        header = head[: head.index(b"\n") + 1]
        sha256, bounds = _scan_csv(ctx, key, len(header), size, chunk_bytes)
        return Plan([{"index": i, "start": a, "end": b}
                     for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))],
                    header, sha256)
    with closing(io.BufferedReader(RangeReader(ctx.store, key, 0, size))) as f:
        try:
            meta = pq.ParquetFile(f).metadata
            names = list(meta.schema.to_arrow_schema().names)
        except (pa.ArrowInvalid, OSError) as exc:
            raise Unreadable(f"not a readable Parquet file: {str(exc)[:200]}") from None
    missing = [n for n in wanted if n not in names]
    if missing:
        raise Unreadable(f"column {missing[0]!r} is missing from the file")
    chunks: list[dict[str, Any]] = []
    first, acc = 0, 0
    for g in range(meta.num_row_groups):
        acc += meta.row_group(g).total_byte_size
        if acc >= chunk_bytes:
            chunks.append({"index": len(chunks), "row_groups": [first, g + 1]})
            first, acc = g + 1, 0
    if first < meta.num_row_groups or not chunks:
        chunks.append({"index": len(chunks), "row_groups": [first, meta.num_row_groups]})
    with closing(HashingReader(ctx.store.open(key))) as reader:
        sha256 = reader.drain()
    return Plan(chunks, None, sha256)


@dataclass(frozen=True)
class Plan:
    chunks: list[dict[str, Any]]
    header: bytes | None  # a CSV file's header line, passed along in every message
    sha256: str  # the whole object's, streamed once by the planner


# A CSV field as pyarrow's reader reads it (newlines_in_values=True): quoted only when a quote
# opens it ("" inside is a quote; a line break inside is data), else up to the next delimiter,
# a quote there a literal character (12", ab"c: checked against pyarrow 26). Possessive
# quantifiers: one pass in C, no backtracking.
_FIELD = rb'(?:"(?:[^"]|"")*+"[^,\n]*+|[^",\n][^,\n]*+|)'
_ROW = re.compile(_FIELD + rb"(?:," + _FIELD + rb")*+\n")
_ROWS = re.compile(rb"(?:" + _FIELD + rb"(?:," + _FIELD + rb")*+\n)*+")
MAX_ROW = 16 << 20  # a "row" longer than this (an unclosed quote): no more cuts, one chunk


def _rows_end(buf: bytes, pos: int, endpos: int) -> int:
    """The end of the whole rows of buf[pos:endpos] (pos: a row's start)."""
    m = _ROWS.match(buf, pos, endpos)
    return m.end() if m else pos


class _Bounds:
    """Chunk bounds over a CSV file streamed block by block: a bound is the end of the row
    that holds the byte at every chunk_bytes, so a chunk always starts at a row's start and
    never inside a quoted value. Rows are matched by _ROWS in C (80 MB/s on a file with every
    string quoted, as pyarrow's write_csv writes them); a stretch without quotes needs only a
    search for its line breaks."""

    def __init__(self, start: int, size: int, chunk_bytes: int) -> None:
        self.size, self.chunk_bytes = size, chunk_bytes
        self.bounds = [start]
        self.target = start + chunk_bytes
        self.buf, self.base = b"", 0  # the unread tail: a row's start, at this file offset
        self.lost = False

    def feed(self, block: bytes) -> None:
        if self.lost:
            return
        buf, base, pos = self.buf + block, self.base, 0
        quoted = b'"' in buf
        while self.target < self.size and self.target - base < len(buf):
            if quoted:
                row_start = _rows_end(buf, pos, self.target - base)
                row = _ROW.match(buf, row_start)
                end = row.end() if row else -1
            else:
                end = buf.find(b"\n", self.target - base) + 1 or -1
            if end < 0:  # the row runs past this block: placed with the next one
                break
            if base + end < self.size:
                self.bounds.append(base + end)
            self.target, pos = base + end + self.chunk_bytes, end
        done = _rows_end(buf, pos, len(buf)) if quoted else buf.rfind(b"\n") + 1
        self.buf, self.base = buf[max(done, pos):], base + max(done, pos)
        if len(self.buf) > MAX_ROW:
            self.lost, self.buf = True, b""


def _scan_csv(ctx: Context, key: str, start: int, size: int, chunk_bytes: int
              ) -> tuple[str, list[int]]:
    """Stream the object once: its sha256 and the chunk bounds (_Bounds)."""
    digest = hashlib.sha256()
    bounds = _Bounds(start, size, chunk_bytes)
    with closing(ctx.store.open(key)) as f:
        while block := f.read(SCAN_BYTES):
            digest.update(block)
            bounds.feed(block)
    out = bounds.bounds
    if out[-1] < size or len(out) == 1:
        out.append(size)
    return digest.hexdigest(), out


def fan_out(ctx: Context, model: str, key: str, base: dict[str, Any], predictor: Predictor,
            chosen_by: str, keep: list[str], capture_rate: float | None = None
            ) -> dict[str, Any]:
    """Plan the chunks, record the job, send one message per chunk (once: a redelivered
    upload re-sends only what a crash left unsent). Unreadable: nothing was sent."""
    assert ctx.scoring_queue is not None
    name = basename(key).rsplit(".", 1)[0]
    etag = base["input"]["etag"]
    jobs = ScoringJobs(ctx.table, ctx.clock)
    try:  # a redelivered upload: no second pass over the file when it was sent out
        job = jobs.get(model, name, etag)
        if job["status"] in (SCORED, QUARANTINED) or job.get("dispatched"):
            return {"status": job["status"] if job["status"] != RUNNING else "running",
                    "model": model, "key": key, "version": job.get("version"),
                    "chunks": job.get("total"), "dispatched": 0}
    except NotFound:
        pass
    p = plan(ctx, key, base["input"]["size"], list(predictor.feature_names) + keep,
             ctx.scoring_chunk_bytes)
    chunks, header = p.chunks, p.header
    job, _ = jobs.start(model, name, etag, {
        "key": key, "input": {**base["input"], "sha256": p.sha256}, "chunked": True,
        "total": len(chunks), "version": predictor.version, "chosen_by": chosen_by,
        "keep": keep, "columns": output_columns(predictor, keep, chunked=True),
        "chunk_bytes": ctx.scoring_chunk_bytes, "capture_rate": capture_rate,
        "route": base.get("route")})
    out = {"status": "running", "model": model, "key": key, "version": predictor.version,
           "chunks": len(chunks), "dispatched": 0}
    if job["status"] != RUNNING or job.get("dispatched"):
        return {**out, "status": job["status"] if job["status"] != RUNNING else "running"}
    for c in chunks:
        ctx.scoring_queue.send({MESSAGE: {
            "model": model, "name": name, "key": key, "etag": etag, **c,
            **({"header": header.decode("utf-8")} if header is not None else {})}})
    jobs.update(model, name, etag, {"dispatched": True})
    ctx.step("fanned out", chunks=len(chunks))
    return {**out, "dispatched": len(chunks)}


def _message(msg: Any) -> dict[str, Any]:
    body = msg.get(MESSAGE) if isinstance(msg, dict) and MESSAGE in msg else msg
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in (
            "model", "name", "key", "etag")) or not isinstance(body.get("index"), int):
        raise ValidationError("message: not a scoring chunk (model, name, key, etag, index)",
                              field="message")
    return body


def score_chunk(ctx: Context, msg: Any) -> dict[str, Any]:
    """One chunk: score it, record and count it; the one completing the set finishes."""
    m = _message(msg)
    model, name, key, etag, index = m["model"], m["name"], m["key"], m["etag"], m["index"]
    jobs = ScoringJobs(ctx.table, ctx.clock)
    job = jobs.get(model, name, etag)
    base = {"model": model, "key": key, "chunk": index, "total": job["total"]}
    if job["status"] != RUNNING:
        return {**base, "status": "duplicate", "job_status": job["status"]}
    if jobs.get_chunk(model, name, etag, index) is not None:
        if job["done"] == job["total"]:  # the finisher died before the manifest: finish now
            return _finish(ctx, jobs, job)
        return {**base, "status": "duplicate"}
    keep = list(job.get("keep") or [])
    try:
        predictor = ModelService(ctx.store, ctx.registry).load_version(model, job["version"])
    except (SpecError, NotFound) as exc:  # final: the version is gone
        return _end(ctx, jobs, job, "failed", exc.message)
    if "row_groups" in m:
        a, b = m["row_groups"]
        window = Window(row_groups=(int(a), int(b)))
    else:
        window = Window(start=int(m["start"]), end=int(m["end"]),
                        header=str(m["header"]).encode("utf-8"))
    parts = Parts(ctx, model, name, first_part=index * PART_STRIDE, chunk=index)
    sample = sample_for(ctx, job.get("capture_rate"), f"score:{name}:{index}")
    try:
        rows_in = score_window(ctx, predictor, key, keep, parts, window, sample)
    except Unreadable as exc:
        return _end(ctx, jobs, job, QUARANTINED, f"chunk {index}: {exc}")
    except (UnicodeDecodeError, ValidationError) as exc:
        return _end(ctx, jobs, job, QUARANTINED, f"chunk {index}: {describe(exc)}")
    rejects_key = None
    if parts.rejects:
        rejects_key = layout.predictions_chunk_rejects_key(model, name, index)
        ctx.store.put(rejects_key, to_parquet(parts.rejects_table()),
                      content_type="application/vnd.apache.parquet")
    counted = jobs.record_chunk(model, name, etag, {
        "index": index, "rows_in": rows_in, "rows_scored": parts.rows,
        "rows_rejected": parts.rejected, "parts": parts.keys, "rejects": rejects_key,
        **{k: m[k] for k in ("start", "end", "row_groups") if k in m}})
    # captured once: only by the delivery that counted the chunk (at most once, as a crash
    # between the two loses this chunk's sample rather than doubling it)
    captured = flush_sample(sample) if counted.recorded else None
    if counted.completes_job:
        return {**_finish(ctx, jobs, jobs.get(model, name, etag)),
                **({"captured": captured} if captured is not None else {})}
    return {**base, "status": "chunk_scored", "done": counted.done, "rows_in": rows_in,
            "rows_scored": parts.rows, "rows_rejected": parts.rejected,
            "duplicate": not counted.recorded,
            **({"captured": captured} if captured is not None else {})}


def _finish(ctx: Context, jobs: ScoringJobs, job: dict[str, Any]) -> dict[str, Any]:
    """Every chunk is counted: merge the rejects, write the manifest (once), end the job."""
    model, name, etag = job["model"], job["name"], job["etag"]
    manifest_key = layout.predictions_manifest_key(model, name)
    if ctx.store.exists(manifest_key):
        done = json.loads(ctx.store.get(manifest_key))
        if done.get("input", {}).get("etag") == etag:  # written before a crash
            jobs.finish(model, name, etag, {"status": SCORED, "manifest": manifest_key})
            return {**done, "status": "scored", "already": True, "manifest_key": manifest_key}
    chunks: list[dict[str, Any]] = sorted(jobs.chunks(model, name, etag, job["total"]),
                                          key=lambda c: int(c["index"]))
    if len(chunks) != int(job["total"]):  # never a manifest that misses a chunk: retried
        raise RegistryConflict(f"scoring job {name!r} of {model!r}: {len(chunks)} of "
                               f"{job['total']} chunks listed; retry")
    first_row, listed = 0, []  # type: tuple[int, list[dict[str, Any]]]
    for c in chunks:
        listed.append({"index": int(c["index"]), "first_row": first_row,
                       **{k: c.get(k) for k in ("rows_in", "rows_scored", "rows_rejected",
                                                "start", "end", "row_groups") if k in c}})
        first_row += int(c["rows_in"])
    rejects_key = _merge_rejects(ctx, model, name, chunks)
    sums: dict[str, int] = {k: sum(int(c.get(k) or 0) for c in chunks)
                            for k in ("rows_in", "rows_scored", "rows_rejected")}
    now = ctx.clock.now()
    manifest = {
        "model": model, "status": "scored", "version": job["version"],
        "chosen_by": job["chosen_by"], "input": job["input"],
        **sums, "parts": [p for c in chunks for p in c.get("parts") or []],
        "rejects": rejects_key, "keep": job.get("keep") or [], "columns": job["columns"],
        "chunked": True, "chunks": listed, "route": job.get("route"),
        "row_numbering": "per chunk: the row of the file is chunks[chunk].first_row + row",
        "started_at": job["started_at"], "finished_at": now.isoformat(),
        "seconds": round((now - datetime.fromisoformat(job["started_at"])).total_seconds(), 3),
    }
    ctx.store.put(manifest_key, to_json(manifest), content_type="application/json")
    _, ended = jobs.finish(model, name, etag, {"status": SCORED, "manifest": manifest_key})
    if ended:
        ctx.notifier.publish(f"mlops-kit: {model} scored {basename(job['key'])}",
                             {"event": "scored", "model": model, "key": job["key"],
                              "version": job["version"], "rows_scored": sums["rows_scored"],
                              "rows_rejected": sums["rows_rejected"], "chunks": len(chunks),
                              "manifest": manifest_key})
    return {**manifest, "manifest_key": manifest_key}


def _merge_rejects(ctx: Context, model: str, name: str, chunks: list[dict[str, Any]]
                   ) -> str | None:
    tables, kept = [], 0
    for c in chunks:
        if not c.get("rejects") or kept >= MAX_REJECTS:
            continue
        t = pq.read_table(io.BytesIO(ctx.store.get(c["rejects"])), schema=REJECT_SCHEMA)
        t = t.slice(0, MAX_REJECTS - kept)
        kept += t.num_rows
        tables.append(t.add_column(0, "chunk", pa.array([int(c["index"])] * t.num_rows,
                                                        pa.int64())))
    if not tables:
        return None
    key = layout.predictions_rejects_key(model, name)
    ctx.store.put(key, to_parquet(pa.concat_tables(tables)),
                  content_type="application/vnd.apache.parquet")
    return key


def _end(ctx: Context, jobs: ScoringJobs, job: dict[str, Any], status: str,
         reason: str) -> dict[str, Any]:
    """A final failure in one chunk ends the whole job (once: the first to end it notifies
    and, for an unreadable file, quarantines a copy with a report)."""
    model, key = job["model"], job["key"]
    record, ended = jobs.finish(model, job["name"], job["etag"],
                                {"status": status, "reason": reason})
    out = {"model": model, "key": key, "status": record["status"], "final": True,
           "reason": record.get("reason"), "error": record.get("reason")}
    if not ended:
        return {**out, "duplicate": True}
    if status == QUARANTINED:
        filename = basename(key)
        qkey = layout.quarantine_key(model, f"scoring-{filename}")
        ctx.store.copy(key, qkey)  # a copy: the upload is never deleted
        report = {"model": model, "input": job["input"], "status": QUARANTINED, "passed": False,
                  "reason": reason, "started_at": job["started_at"]}
        ctx.store.put(qkey + ".report.json", to_json(report), content_type="application/json")
        ctx.notifier.publish(f"mlops-kit: scoring file for {model} quarantined",
                             {"event": "quarantined", "model": model, "key": key,
                              "quarantine_key": qkey, "reason": reason})
        return {**out, "quarantine_key": qkey, "quarantine_report_key": qkey + ".report.json"}
    ctx.notifier.publish(f"mlops-kit: scoring {basename(key)} for {model} "
                         "failed", {"event": "scoring_failed", "model": model, "key": key,
                                    "error": reason})
    return out
