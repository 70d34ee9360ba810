"""Scale out: a file over the context's scoring_chunk_bytes is split into chunks, one message
each on the queue the upload came through (the validate queue), each scored by whichever
function instance takes it; the one that completes the set writes the manifest.

- CSV: byte ranges, cut by the planner at line breaks outside quoted values (a value holding
  a line break is quoted, RFC 4180: quote parity from the file's start tells; see _scan_csv);
  the first starts after the header, which is read once and passed along in every message.
  A file quoted otherwise (a quote inside an unquoted value) is not split: one chunk, and the
  manifest's `unsplit` says why.
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
    header line, the whole object's sha256 and why a CSV file is not split (None: it is).
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
        sha256, bounds, why = _scan_csv(ctx, key, len(header), size, chunk_bytes)
        return Plan([{"index": i, "start": a, "end": b}
                     for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))],
                    header, sha256, why)
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
    return Plan(chunks, None, sha256, None)


@dataclass(frozen=True)
class Plan:
    chunks: list[dict[str, Any]]
    header: bytes | None  # a CSV file's header line, passed along in every message
    sha256: str  # the whole object's, streamed once by the planner
    unsplit: str | None  # why a CSV file over the chunk size is one chunk


# a quote that neither opens a value (after a delimiter or a line break), closes one (before
# them) nor is doubled: the file is not RFC 4180 quoted, and quote parity cannot place a split
_STRAY_QUOTE = re.compile(rb'[^,\n"]"[^,\r\n"]')
BOM = b"\xef\xbb\xbf"


def _scan_csv(ctx: Context, key: str, start: int, size: int, chunk_bytes: int
              ) -> tuple[str, list[int], str | None]:
    """Stream the object once: its sha256 and the chunk bounds. A bound is the offset after a
    line break at or after every chunk_bytes that is outside any quoted value: in RFC 4180
    quoting (a value that holds a delimiter, quote or line break is enclosed in quotes, a quote
    within it doubled) a line break is inside a value exactly when an odd number of quote
    characters precede it in the file, so counting them (bytes.count: C speed) tells, and
    pyarrow's reader (newlines_in_values=True) reads each chunk from a row's start. A file
    with a quote elsewhere (ab"c: pyarrow reads it as a literal) breaks that count: it is not
    split, and the manifest says why."""
    digest = hashlib.sha256()
    bounds, quotes, pos, tail = [start], 0, 0, b"\n"
    target = start + chunk_bytes
    stray = False
    with closing(ctx.store.open(key)) as f:
        while block := f.read(SCAN_BYTES):
            digest.update(block)
            has_quotes = b'"' in block
            if has_quotes and not stray and _STRAY_QUOTE.search(
                    tail + (block.removeprefix(BOM) if pos == 0 else block)):
                stray = True
            while not stray and target < min(size, pos + len(block)):
                j = block.find(b"\n", max(0, target - pos))
                while j >= 0 and has_quotes and (quotes + block.count(b'"', 0, j)) % 2:
                    j = block.find(b"\n", j + 1)
                if j < 0:  # no bound in this block: look on from the next one's start
                    target = pos + len(block)
                    break
                at = pos + j + 1
                if at < size:
                    bounds.append(at)
                target = at + chunk_bytes
            quotes += block.count(b'"')
            pos += len(block)
            tail = block[-2:]
    why = None
    if stray:
        why = ("a quote character inside an unquoted value (not RFC 4180 quoting): line "
               "breaks inside quoted values cannot be told apart, so the file is one chunk")
        bounds = [start]
    if bounds[-1] < size or len(bounds) == 1:
        bounds.append(size)
    return digest.hexdigest(), bounds, why


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
        if job["status"] != RUNNING or job.get("dispatched"):
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
        **({"unsplit": p.unsplit} if p.unsplit else {})})
    out = {"status": "running", "model": model, "key": key, "version": predictor.version,
           "chunks": len(chunks), "dispatched": 0,
           **({"unsplit": p.unsplit} if p.unsplit else {})}
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
        "chunked": True, "chunks": listed,
        **({"unsplit": job["unsplit"]} if job.get("unsplit") else {}),
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
