"""Scoring past what functions can do: the job goes to the batch engine (Context.scoring_jobs:
a separate process on the local backend; on AWS Batch on Fargate the `score-large` job
definition with scoring's grants, topology.scoring_job), which runs the same `score_upload` on
the whole file.

- `route` sizes the upload (core/scoring/sizing.py) and says where it is scored.
- `submit` records the job (running, `engine` and the reason) and submits it under a name
  derived from the upload (model, name, etag): a redelivered upload finds the job it started.
- `run_scoring_job` (core/scoring/usecase.py, beside what it runs) is what the job runs
  (`python -m mlops_kit.train_job` with MLOPSKIT_JOB_KIND=score): `score_upload` pinned to
  the version chosen at submit, writing the same parts, rejects and manifest and ending the
  job in the same final states and notifications. Exit codes are training's: OK, FINAL (the
  job is failed/quarantined and announced), RETRY (a transient fault: the engine retries the
  attempt; parts are rewritten under the same keys).
- `on_job_state` settles what the job could not (killed, out of memory, timed out): a job
  still `running` when the engine reports its end is `failed` with the engine's reason, once.
"""

from __future__ import annotations

import hashlib
import io
import json
from contextlib import closing
from posixpath import basename
from typing import Any

from mlops_kit.core.context import Context
from mlops_kit.core.scoring.records import FAILED, RUNNING, ScoringJobs
from mlops_kit.core.scoring.sizing import (
    ScoringRoute,
    choose_scoring_engine,
    csv_size,
    parquet_size,
)
from mlops_kit.errors import MlopsKitError
from mlops_kit.ports import JobState

# The job's environment: the contract between `submit` and the job (`train_job` dispatches on
# the kind; a training job has no kind).
ENV_KIND, ENV_SCORE_JOB = "MLOPSKIT_JOB_KIND", "MLOPSKIT_SCORE_JOB"
SCORE_KIND = "score"
EXIT_OK, EXIT_FINAL, EXIT_RETRY = 0, 1, 75  # as training's (core/training/engines.py)
TERMINAL = ("SUCCEEDED", "FAILED")


def job_name(model: str, name: str, etag: str) -> str:
    """A stable engine name per upload: score-<model>-<sha256(name, etag)[:32]>."""
    digest = hashlib.sha256(f"{name}\0{etag}".encode()).hexdigest()[:32]
    safe = "".join(c if c.isalnum() or c in "_-" else "-" for c in model)[:80]
    return f"score-{safe}-{digest}"


def route(ctx: Context, key: str, size: int) -> ScoringRoute:
    """Where this upload is scored (functions, fanned out or whole; or the batch engine)."""
    import pyarrow as pa  # here: the state-change handler (on_job_state) stays light
    import pyarrow.parquet as pq

    from mlops_kit.core.scoring.engine import RangeReader, fmt_of

    split = ctx.scoring_queue is not None and 0 < ctx.scoring_chunk_bytes < size
    if fmt_of(key) == "csv":
        sized = csv_size(size, ctx.scoring_chunk_bytes, split)
    else:
        try:  # the footer only (ranged reads)
            with closing(io.BufferedReader(RangeReader(ctx.store, key, 0, size))) as f:
                meta = pq.ParquetFile(f).metadata
        except (pa.ArrowInvalid, OSError):  # unreadable: the function quarantines it
            return ScoringRoute("function", "not a readable Parquet file")
        sized = parquet_size([meta.row_group(g).num_rows for g in range(meta.num_row_groups)],
                             split)
    return choose_scoring_engine(sized, batch_available=ctx.scoring_jobs is not None,
                                 batch_seconds=ctx.scoring_batch_seconds)


def submit(ctx: Context, model: str, key: str, base: dict[str, Any], version: int,
           chosen_by: str, why: str) -> dict[str, Any]:
    """Record the job and hand it to the batch engine, once per upload."""
    assert ctx.scoring_jobs is not None
    name = basename(key).rsplit(".", 1)[0]
    etag = str(base["input"]["etag"])
    jobs = ScoringJobs(ctx.table, ctx.clock)
    record, created = jobs.start(model, name, etag, {
        "key": key, "input": base["input"], "chunked": False, "total": 1, "version": version,
        "chosen_by": chosen_by, "engine": ctx.scoring_jobs.engine, "route": why})
    out = {"model": model, "key": key, "version": version, "engine": ctx.scoring_jobs.engine,
           "route": why}
    if record["status"] != RUNNING:  # this upload's job ended already
        return {**out, "status": "duplicate", "job_status": record["status"]}
    if not created and "engine" not in record:  # started on functions (settings changed since)
        return {**out, "status": "running", "duplicate": True, "engine": None}
    if record.get("job_id"):  # submitted before; this is a redelivered upload
        return {**out, "status": "submitted", "duplicate": True, "job_id": record["job_id"],
                "job_name": record["job_name"]}
    env = {ENV_KIND: SCORE_KIND, ENV_SCORE_JOB: json.dumps({
        "model": model, "key": key, "etag": etag, "version_id": base["input"].get("version_id"),
        "version": version, "chosen_by": chosen_by, "route": why}, sort_keys=True)}
    # idempotent by name: after a crash between submit and the update, the engine finds it
    handle = ctx.scoring_jobs.submit(job_name(model, name, etag), env)
    jobs.update(model, name, etag, {"job_id": handle.job_id, "job_name": handle.name,
                                    "engine": handle.engine})
    if handle.created:
        ctx.notifier.publish(f"mlops-kit: scoring {basename(key)} for {model} on {handle.engine}",
                             {"event": "scoring_submitted", "model": model, "key": key,
                              "version": version, "engine": handle.engine,
                              "job_id": handle.job_id, "job_name": handle.name, "reason": why})
    return {**out, "status": "submitted", "duplicate": not handle.created,
            "job_id": handle.job_id, "job_name": handle.name}


def job_from_env(env: dict[str, str]) -> dict[str, Any]:
    try:
        job = json.loads(env.get(ENV_SCORE_JOB) or "")
    except ValueError:
        raise MlopsKitError(f"{ENV_SCORE_JOB} is not set or not JSON", field=ENV_SCORE_JOB) \
            from None
    if not isinstance(job, dict) or not all(isinstance(job.get(k), str) and job[k]
                                            for k in ("model", "key", "etag", "chosen_by")) \
            or type(job.get("version")) is not int:
        raise MlopsKitError(f"{ENV_SCORE_JOB}: not a scoring job (model, key, etag, version)",
                            field=ENV_SCORE_JOB)
    return job


def on_job_state(ctx: Context, state: JobState) -> dict[str, Any]:
    """The engine reports a scoring job's state: at its end, a job still running failed."""
    out: dict[str, Any] = {"kind": SCORE_KIND, "job_name": state.name, "job_id": state.job_id,
                           "job_status": state.status}
    try:
        job = job_from_env(state.env)
    except MlopsKitError as exc:
        return {**out, "status": "ignored", "reason": exc.message}
    out.update(model=job["model"], key=job["key"], version=job["version"])
    if state.status not in TERMINAL:
        return {**out, "status": "observed"}
    name = basename(job["key"]).rsplit(".", 1)[0]
    record = ScoringJobs(ctx.table, ctx.clock).get(job["model"], name, job["etag"])
    if record["status"] != RUNNING:  # the job ended itself (scored, failed, quarantined)
        return {**out, "status": record["status"], "settled_here": False,
                **{k: record[k] for k in ("rows_in", "rows_scored", "rows_rejected", "reason")
                   if record.get(k) is not None},
                **({"manifest_key": record["manifest"]} if record.get("manifest") else {})}
    reason = (f"scoring job {state.name} failed on {state.engine}: "
              f"{state.reason or 'no reason given'}" if state.status == "FAILED" else
              f"scoring job {state.name} succeeded on {state.engine} without ending the job")
    settled = fail(ctx, job, reason)
    return {**out, "status": FAILED, "settled_here": settled, "reason": reason}


def fail(ctx: Context, job: dict[str, Any], reason: str) -> bool:
    """running -> failed with the reason and one notification (False: already ended)."""
    model, key = job["model"], job["key"]
    _, ended = ScoringJobs(ctx.table, ctx.clock).finish(
        model, basename(key).rsplit(".", 1)[0], job["etag"], {"status": FAILED,
                                                              "reason": reason})
    if ended:
        ctx.notifier.publish(f"mlops-kit: scoring {basename(key)} for {model} failed",
                             {"event": "scoring_failed", "model": model, "key": key,
                              "error": reason})
    return ended
