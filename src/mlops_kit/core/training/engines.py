"""Training beyond the function: route a training job by its size, run it on the batch engine
with the same use case and the same registry reservation, and settle its version when the
engine reports the job's end.

- `route_training` is what the train-queue consumer calls: a small job trains in-process
  (`train_job`, as always); a large one reserves its version (idempotent by run key) and is
  submitted to `ctx.jobs` under a name derived from the run key, so a redelivered message
  finds the job it already started.
- `run_batch_job` is what the job runs (`python -m mlops_kit.train_job`): the same `train_job`; a
  data/spec/model failure marks the version `failed` and exits FINAL (never retried), a
  transient fault exits RETRY (the engine retries the attempt).
- `on_job_state` settles what the job could not: a job that died (out of memory, timeout,
  retries exhausted, no image) leaves its version `pending`; the engine's FAILED (or a
  SUCCEEDED that completed nothing) marks it `failed` with the reason and notifies.

Imports no scikit-learn at module level: the state-change handler is a light function.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import replace
from typing import Any

from mlops_kit.core.context import Context, load_spec
from mlops_kit.core.registry import FAILED, PENDING
from mlops_kit.core.sizing import JobSize, choose_engine
from mlops_kit.core.spec import ModelSpec
from mlops_kit.core.table_keys import train_job_pk
from mlops_kit.core.training import runs
from mlops_kit.errors import MlopsKitError, describe, is_retryable
from mlops_kit.ports import JobState

log = logging.getLogger("mlops_kit.train.jobs")

# The job's environment: the contract between the router and `python -m mlops_kit.train_job`.
ENV_JOB, ENV_DATASET, ENV_RUN, ENV_MODEL, ENV_VERSION = (
    "MLOPSKIT_TRAIN_JOB", "MLOPSKIT_DATASET_KEY", "MLOPSKIT_RUN_ID", "MLOPSKIT_MODEL",
    "MLOPSKIT_VERSION")
JOB_ENV_NAMES = (ENV_JOB, ENV_DATASET, ENV_RUN, ENV_MODEL, ENV_VERSION)
EXIT_OK, EXIT_FINAL, EXIT_RETRY = 0, 1, 75  # 75: EX_TEMPFAIL, the one exit code retried
TERMINAL = ("SUCCEEDED", "FAILED")


def job_name(model: str, run_key: str) -> str:
    """A stable name per run: train-<model>-<dataset sha256[:32]>-<spec hash[:16]>."""
    sha, _, spec16 = run_key.partition(":")
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"train-{model}-{sha[:32]}-{spec16}")


# -- the consumer ------------------------------------------------------------------------------
def route_training(ctx: Context, job: dict[str, Any]) -> dict[str, Any]:
    """Train a small job here; hand a large one to the batch engine (ctx.jobs). A search's
    trial fanned out on the train queue trains here (its run was routed already)."""
    if job.get("type") == "trial":
        from mlops_kit.core.training.usecase import train_job

        return train_job(ctx, job)
    spec = load_spec(ctx.store, job["model"])
    size = JobSize.from_dict(job.get("size"))
    route = choose_engine(spec.training.engine, size,
                          replace(ctx.limits, batch_available=ctx.jobs is not None))
    if route.engine == "function":
        from mlops_kit.core.training.usecase import train_job  # scikit-learn: only here

        return {**train_job(ctx, job), "engine": "function", "route": route.reason}
    return _submit(ctx, job, spec, route.reason)


def _submit(ctx: Context, job: dict[str, Any], spec: ModelSpec, why: str) -> dict[str, Any]:
    model = job["model"]
    run_key = runs.run_key(job, spec)
    engine = ctx.jobs.engine if ctx.jobs is not None else None
    reservation = ctx.registry.reserve_version(
        model, run_key, {**runs.lineage(job, spec), "engine": engine or "batch"})
    version = reservation.version
    out: dict[str, Any] = {"model": model, "version": version, "engine": engine, "route": why}
    if not reservation.created and runs.unchanged(job, reservation.record):
        return {**out, **runs.unchanged_outcome(ctx, model, version, reservation.record, job)}
    if reservation.record.get("status") != PENDING:  # this run already ended
        return {**out, "status": "duplicate", "registry_status": reservation.record["status"]}
    if ctx.jobs is None:  # the spec forces batch on a deployment without one: final
        reason = ("training.engine is batch but this deployment has no batch engine "
                  "(enable it, or set training.engine: auto)")
        _fail(ctx, model, version, reason, {"engine": None})
        return {**out, "status": FAILED, "reasons": [reason]}
    marker = ctx.table.get(train_job_pk(model), run_key)
    if marker and marker.get("job_id"):  # submitted before; this message is a redelivery
        return {**out, "status": "submitted", "duplicate": True, "job_id": marker["job_id"],
                "job_name": marker["job_name"]}
    env = {ENV_JOB: json.dumps(job, sort_keys=True, default=str),
           ENV_DATASET: job["dataset_key"], ENV_RUN: run_key, ENV_MODEL: model,
           ENV_VERSION: str(version)}
    # Idempotent by name: after a crash between submit and this marker, the engine finds it.
    handle = ctx.jobs.submit(job_name(model, run_key), env)
    ctx.table.put(train_job_pk(model), run_key, {
        "model": model, "version": version, "engine": handle.engine, "job_name": handle.name,
        "job_id": handle.job_id, "submitted_at": ctx.clock.now().isoformat(), "route": why})
    if handle.created:
        ctx.notifier.publish(f"mlops-kit: {model} v{version} training on {handle.engine}", {
            "event": "training_submitted", "model": model, "version": version,
            "engine": handle.engine, "job_id": handle.job_id, "job_name": handle.name,
            "reason": why})
    return {**out, "status": "submitted", "duplicate": not handle.created,
            "job_id": handle.job_id, "job_name": handle.name}


# -- the job -----------------------------------------------------------------------------------
def job_from_env(env: dict[str, str]) -> dict[str, Any]:
    """The training job a batch job runs, from its environment (checked against itself)."""
    missing = [n for n in JOB_ENV_NAMES if not env.get(n)]
    if missing:
        raise MlopsKitError(f"not a training job: {', '.join(missing)} not set", field=missing[0])
    try:
        job = json.loads(env[ENV_JOB])
    except ValueError:
        raise MlopsKitError(f"{ENV_JOB} is not JSON", field=ENV_JOB) from None
    if not isinstance(job, dict) or job.get("dataset_key") != env[ENV_DATASET] \
            or job.get("model") != env[ENV_MODEL]:
        raise MlopsKitError(f"{ENV_JOB} does not match {ENV_DATASET}/{ENV_MODEL}", field=ENV_JOB)
    return job


def run_batch_job(ctx: Context, env: dict[str, str]) -> tuple[dict[str, Any], int]:
    """Run one batch training job: the same train use case (and registry reservation) as the
    function. Returns the outcome and the process exit code: OK (registered, rejected or a
    duplicate), FINAL (the version is `failed`, an alert went out) or RETRY (a transient fault:
    the engine retries the attempt; the version stays pending and the retry resumes it)."""
    job = job_from_env(env)
    model, version = job["model"], int(env[ENV_VERSION])
    from mlops_kit.core.training.usecase import train_job

    try:
        outcome = train_job(ctx, job)  # a final failure after the reservation: status failed
    except Exception as exc:  # noqa: BLE001 - classified: retry, or the version fails here
        if is_retryable(exc):
            log.warning("training job for %s v%s: transient failure, retrying: %s", model,
                        version, describe(exc))
            return {"status": "retry", "model": model, "version": version,
                    "reason": describe(exc)}, EXIT_RETRY
        reason = ("out of memory while training: raise the batch job's memory"
                  if isinstance(exc, MemoryError) else describe(exc))
        _fail(ctx, model, version, reason, {"engine": "batch"})  # e.g. the spec is gone
        return {"status": FAILED, "model": model, "version": version, "reason": reason,
                "reasons": [reason]}, EXIT_FINAL
    if outcome.get("status") == FAILED:
        reasons = outcome.get("reasons") or [outcome.get("error")]
        return {**outcome, "reason": "; ".join(str(r) for r in reasons)}, EXIT_FINAL
    return outcome, EXIT_OK


# -- the engine's report -----------------------------------------------------------------------
def on_job_state(ctx: Context, state: JobState) -> dict[str, Any]:
    """A job's state changed. At its end, a version still `pending` becomes `failed` (with the
    engine's reason) and a notification goes out; a version the job completed is left alone.
    The outcome's status is then the version's (registered, rejected, failed); settled_here
    says whether this call failed it."""
    from mlops_kit.core.scoring import batch as scoring_batch  # light: no scikit-learn

    if state.env.get(scoring_batch.ENV_KIND) == scoring_batch.SCORE_KIND:
        return scoring_batch.on_job_state(ctx, state)
    out: dict[str, Any] = {"job_name": state.name, "job_id": state.job_id,
                           "job_status": state.status}
    model, number = state.env.get(ENV_MODEL), state.env.get(ENV_VERSION) or ""
    if not model or not number.isdigit():
        return {**out, "status": "ignored", "reason": "not a mlops-kit training job"}
    version = int(number)
    out.update(model=model, version=version)
    if state.status not in TERMINAL:
        return {**out, "status": "observed"}
    record = ctx.registry.get_version(model, version)
    if record.get("status") != PENDING:  # the job completed (or failed) its version itself
        return {**out, "status": record.get("status"), "settled_here": False,
                "reasons": record.get("reasons") or [], "promoted":
                ctx.registry.champion_version(model) == version}
    if state.status == "FAILED":
        reason = f"training job {state.name} failed on {state.engine}: " \
                 f"{state.reason or 'no reason given'}"
    else:
        reason = (f"training job {state.name} succeeded on {state.engine} without completing "
                  f"v{version} (the spec changed after routing, or the job trained another run)")
    settled_here = _fail(ctx, model, version, reason, {
        "engine": state.engine, "job_id": state.job_id, "attempts": state.attempts})
    record = ctx.registry.get_version(model, version)
    return {**out, "status": record.get("status"), "settled_here": settled_here,
            "reasons": record.get("reasons") or []}


def _fail(ctx: Context, model: str, version: int, reason: str, job: dict[str, Any]) -> bool:
    """pending -> failed with the reason, and notify. False if the version was already
    complete (someone else settled it first: no second notification)."""
    token = uuid.uuid4().hex  # tells our write from a concurrent one with the same reason
    record = ctx.registry.complete_version(model, version, {
        "status": FAILED, "reasons": [reason], "job": {**job, "settled_by": token}})
    if (record.get("job") or {}).get("settled_by") != token:
        return False
    # the same alert a failed training in the function sends (core/training/usecase.py)
    ctx.notifier.publish(f"mlops-kit: {model} v{version} {FAILED}", {
        "event": "trained", "model": model, "version": version, "status": FAILED,
        "promoted": False, "reasons": [reason],
        **{k: v for k, v in job.items() if v is not None}})
    return True
