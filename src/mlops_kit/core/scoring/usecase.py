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

A file larger than the context's scoring_chunk_bytes is fanned out instead: one validate-queue
message per chunk (core/scoring/fanout.py). Every job, whole or fanned out, is a record in the
table (core/scoring/records.py) that `mlops-kit jobs` lists, and ends in a final state.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import closing, nullcontext
from posixpath import basename
from typing import Any, BinaryIO, cast

from mlops_kit.core import layout
from mlops_kit.core.context import Context, to_json
from mlops_kit.core.datasets import HashingReader
from mlops_kit.core.registry import CHAMPION
from mlops_kit.core.scoring import batch
from mlops_kit.core.scoring.batch import route, submit
from mlops_kit.core.scoring.engine import (
    Parts,
    Unreadable,
    flush_sample,
    fmt_of,
    output_columns,
    sample_for,
    score_window,
    to_parquet,
)
from mlops_kit.core.scoring.fanout import fan_out
from mlops_kit.core.scoring.records import FAILED, QUARANTINED, SCORED, ScoringJobs
from mlops_kit.core.serving.service import ModelService
from mlops_kit.errors import (
    MlopsKitError,
    NotFound,
    SpecError,
    ValidationError,
    describe,
    is_retryable,
)

log = logging.getLogger("mlops_kit.score.jobs")
CAPTURE_RATE = 0.1  # the share of scored rows captured with {"capture": true}


def _capture_rate(opts: dict[str, Any]) -> float | None:
    return float(opts.get("capture_rate", CAPTURE_RATE)) if opts.get("capture") else None


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
    unknown = set(opts) - {"version", "alias", "keep", "capture", "capture_rate"}
    if unknown:
        raise SpecError(f"{key}: unknown option {sorted(unknown)[0]!r} "
                        "(allowed: version, alias, keep, capture, capture_rate)", field=sorted(unknown)[0])
    if "version" in opts and "alias" in opts:
        raise SpecError(f"{key}: give version or alias, not both", field="version")
    if "version" in opts and (type(opts["version"]) is not int or opts["version"] < 1):
        raise SpecError(f"{key}: version must be a positive integer", field="version")
    if not isinstance(opts.get("capture", False), bool):
        raise SpecError(f"{key}: capture must be true or false", field="capture")
    rate = opts.get("capture_rate", CAPTURE_RATE)
    if type(rate) not in (int, float) or not 0 < rate <= 1:
        raise SpecError(f"{key}: capture_rate must be a number in (0, 1]", field="capture_rate")
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


def score_upload(ctx: Context, model: str, key: str, *, etag: str | None = None,
                 version_id: str | None = None,
                 pinned: tuple[int, str, str | None] | None = None) -> dict[str, Any]:
    """Score one uploaded file; returns the job's final outcome (also in _manifest.json), or,
    for a job past what functions can do, its submission to the batch engine
    (core/scoring/batch.py). `pinned` (version, chosen_by, route): this is that job, scoring the
    whole file here with the version chosen at submit."""
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
    jobs = ScoringJobs(ctx.table, ctx.clock)
    if pinned is not None:
        base.update(engine="batch", route=pinned[2])
    try:
        opts = _options(ctx, model, name)
        version, chosen_by = _resolve(ctx, model, opts) if pinned is None else pinned[:2]
        predictor = ModelService(ctx.store, ctx.registry).load_version(model, version)
    except (SpecError, NotFound) as exc:  # final: nothing to score with
        return _failed(ctx, jobs, model, key, base, exc)
    keep = [c for c in opts.get("keep", []) if c not in predictor.feature_names]
    if pinned is None:
        where = route(ctx, key, info.size)
        base["route"] = where.reason
        if where.engine == "batch":
            return submit(ctx, model, key, base, version, chosen_by, where.reason)
    if pinned is None and ctx.scoring_queue is not None and 0 < ctx.scoring_chunk_bytes < info.size:
        try:
            return fan_out(ctx, model, key, base, predictor, chosen_by, keep,
                           _capture_rate(opts))
        except Unreadable as exc:
            return _quarantined(ctx, jobs, model, key, filename, base, str(exc))
    _job(jobs, model, name, base, None, version=version)
    parts = Parts(ctx, model, name)
    sample = sample_for(ctx, _capture_rate(opts), f"score:{name}")
    # a CSV file is read once, in order: its sha256 is taken as it is scored (a Parquet file
    # is read by ranges, footer first: hashed by a read of its own below)
    hashing = HashingReader(ctx.store.open(key)) if fmt_of(key) == "csv" else None
    try:
        with closing(hashing) if hashing is not None else nullcontext():
            rows_in = score_window(ctx, predictor, key, keep, parts, sample=sample,
                                   opened=cast("BinaryIO | None", hashing))
            sha256 = hashing.drain() if hashing is not None else None  # the rest: usually none
    except Unreadable as exc:
        return _quarantined(ctx, jobs, model, key, filename, base, str(exc))
    except (UnicodeDecodeError, ValidationError) as exc:
        return _quarantined(ctx, jobs, model, key, filename, base, describe(exc))
    rejects_key = None
    if parts.rejects:
        rejects_key = layout.predictions_rejects_key(model, name)
        ctx.store.put(rejects_key, to_parquet(parts.rejects_table()))
    if sha256 is None:
        with closing(HashingReader(ctx.store.open(key))) as reader:
            sha256 = reader.drain()
    manifest = {
        **base, "status": "scored", "version": version, "chosen_by": chosen_by,
        "input": {**base["input"], "sha256": sha256},
        "rows_in": rows_in, "rows_scored": parts.rows, "rows_rejected": parts.rejected,
        "parts": parts.keys, "rejects": rejects_key, "keep": keep,
        "columns": output_columns(predictor, keep, chunked=False),
        "finished_at": ctx.clock.now().isoformat(),
        "seconds": round(time.monotonic() - started, 3),
    }
    ctx.store.put(manifest_key, to_json(manifest), content_type="application/json")
    captured = flush_sample(sample)  # after the manifest: a redelivery never captures twice
    _job(jobs, model, name, base, SCORED, rows_in=rows_in, rows_scored=parts.rows,
         rows_rejected=parts.rejected, manifest=manifest_key)
    ctx.notifier.publish(f"mlops-kit: {model} scored {filename}",
                         {"event": "scored", "model": model, "key": key, "version": version,
                          "rows_scored": parts.rows, "rows_rejected": parts.rejected,
                          "manifest": manifest_key})
    return {**manifest, "manifest_key": manifest_key,
            **({"captured": captured} if captured is not None else {})}


def _job(jobs: ScoringJobs, model: str, name: str, base: dict[str, Any], status: str | None,
         **fields: Any) -> bool:
    """The job's record for `mlops-kit jobs`: started (status None), or ended with `status`.
    A rerun of the same upload (a redelivery) finds it and ends it as it ends now. False when
    an earlier delivery had already ended it (its notice went out then: none is sent again)."""
    etag = str(base["input"]["etag"])
    jobs.start(model, name, etag, {"key": base["input"]["key"], "input": base["input"],
                                   "chunked": False, "total": 1, "route": base.get("route"),
                                   **({"version": fields["version"]} if "version" in fields
                                      else {})})
    if status is not None:
        return jobs.finish(model, name, etag, {"status": status, **fields})[1]
    return True


def _failed(ctx: Context, jobs: ScoringJobs, model: str, key: str, base: dict[str, Any],
            exc: MlopsKitError) -> dict[str, Any]:
    name = basename(key).rsplit(".", 1)[0]
    ended = _job(jobs, model, name, base, FAILED, reason=exc.message)
    outcome = {**base, "status": "failed", "final": True, "error": exc.message,
               "field": exc.field}
    if not ended:
        return {**outcome, "already": True}
    ctx.notifier.publish(f"mlops-kit: scoring {basename(key)} for {model} failed",
                         {"event": "scoring_failed", "model": model, "key": key,
                          "error": exc.message})
    return outcome


def _quarantined(ctx: Context, jobs: ScoringJobs, model: str, key: str, filename: str,
                 base: dict[str, Any], reason: str) -> dict[str, Any]:
    """Quarantine the file (a copy and a report: the same objects again on a redelivery),
    then end the job; the notice goes out from the delivery that ended it, once."""
    qkey = layout.quarantine_key(model, f"scoring-{filename}")
    ctx.store.copy(key, qkey)  # a copy: the upload is never deleted
    report = {**base, "status": "quarantined", "passed": False, "reason": reason}
    ctx.store.put(qkey + ".report.json", to_json(report), content_type="application/json")
    outcome = {**report, "final": True, "quarantine_key": qkey,
               "quarantine_report_key": qkey + ".report.json"}
    if not _job(jobs, model, basename(key).rsplit(".", 1)[0], base, QUARANTINED, reason=reason):
        return {**outcome, "already": True}
    ctx.notifier.publish(f"mlops-kit: scoring file for {model} quarantined",
                         {"event": "quarantined", "model": model, "key": key,
                          "quarantine_key": qkey, "reason": reason})
    return outcome


def run_scoring_job(ctx: Context, env: dict[str, str]) -> tuple[dict[str, Any], int]:
    """Score the whole file here, with the version chosen at submit: (outcome, exit code)."""
    job = batch.job_from_env(env)
    model, key = job["model"], job["key"]
    try:
        outcome = score_upload(ctx, model, key, etag=job["etag"],
                               version_id=job.get("version_id"),
                               pinned=(job["version"], job["chosen_by"], job.get("route")))
    except Exception as exc:  # noqa: BLE001 - classified: retried, or the job fails here
        if is_retryable(exc):
            log.warning("scoring job for %s: transient failure, retrying: %s", key,
                        describe(exc))
            return {"status": "retry", "model": model, "key": key,
                    "reason": describe(exc)}, batch.EXIT_RETRY
        reason = ("out of memory while scoring: raise the batch job's memory"
                  if isinstance(exc, MemoryError) else describe(exc))
        batch.fail(ctx, job, reason)
        return {"status": FAILED, "model": model, "key": key, "reason": reason}, batch.EXIT_FINAL
    if outcome.get("status") in ("scored", "submitted"):
        return outcome, batch.EXIT_OK
    return {**outcome, "reason": outcome.get("error") or outcome.get("reason")}, batch.EXIT_FINAL
