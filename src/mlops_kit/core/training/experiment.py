"""The experiment use case: a spec with a `search` turns one upload into one run of many
trials; only the best trial is refitted, exported, parity-checked, registered and sent to the
promotion gates, through the same steps as a single fit.

Two engines, one record (core/registry/experiments.py):
- in this process: the context's TrialRunner (worker processes locally, or one after another)
  runs the pending trials; each outcome is recorded as it arrives, then the run finishes;
- fanned out (AWS): one train-queue message per trial; each trial is a function invocation
  that records its outcome and counts it in the same transaction, and the one that records
  the last trial finishes the run (refit, export, register, promote).
A trial is idempotent by (run, candidate hash); a failed trial is recorded with its reason and
never fails the run while another trial succeeds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlops_kit.core import layout
from mlops_kit.core.context import Context
from mlops_kit.core.monitoring.run_report import render_run_report
from mlops_kit.core.registry import PENDING, REJECTED
from mlops_kit.core.registry.experiments import FAILED, FINISHED, RUNNING
from mlops_kit.core.registry.run_views import ranked_trials, run_summary
from mlops_kit.core.spec import ModelSpec, load_spec_bytes
from mlops_kit.core.training.fit import split_frame, train
from mlops_kit.core.training.search import candidate_spec, check_search, search_metric
from mlops_kit.core.training.trials import run_sequential, run_trial, skipped
from mlops_kit.errors import NotFound

__all__ = ["TrainSteps", "fail_run", "finish_search", "rank_trials", "run_search", "trial_job"]

log = logging.getLogger("mlops_kit.experiment")
MAX_BEAT = 200  # lineage lists at most this many beaten trials (the run keeps them all)


@dataclass(frozen=True)
class TrainSteps:
    """The single-fit steps the train use case lends the experiment (no import cycle):
    read the validated frame (None if the dataset changed), and register a fitted result."""

    read: Callable[[Context, dict[str, Any], ModelSpec], Any]
    register: Callable[..., dict[str, Any]]


def run_search(ctx: Context, job: dict[str, Any], spec: ModelSpec, version: int,
               lineage: dict[str, Any], frame: Any, steps: TrainSteps) -> dict[str, Any]:
    """Start (or resume) the run of this upload; the run is numbered by its version."""
    model, search = spec.name, spec.search
    assert search is not None
    plan = check_search(spec)  # names a bad parameter before anything trains
    assert plan is not None
    split_frame(spec, frame)  # a data problem (one class, too few rows) ends the run at once
    run, _ = ctx.runs.start_run(model, version, {
        "version": version, "dataset_key": job["dataset_key"],
        "dataset_sha256": job["sha256"], "spec_hash": spec.spec_hash(),
        "trigger": job.get("trigger", "upload"), "strategy": search.strategy,
        "metric": search_metric(spec), "higher_is_better": spec.higher_is_better(search_metric(spec)),
        "cv": search.cv, "max_candidates": search.max_candidates,
        "max_seconds": search.max_seconds, "space": plan.space, "notes": plan.notes,
        "trials": plan.trials, "engine": _engine(ctx),
    })
    if run["status"] != RUNNING:
        return finish_search(ctx, job, spec, version, steps, frame=frame)
    recorded = {t["hash"] for t in ctx.runs.trials(model, version)}
    pending = [t for t in run["trials"] if t["hash"] not in recorded]
    if ctx.fan_out_trials:
        return _fan_out(ctx, job, spec, run, pending)
    runner = ctx.trial_runner or run_sequential
    by_hash = {t["hash"]: t for t in pending}
    for outcome in runner(spec, frame, pending, max_seconds=_remaining(ctx, run)):
        ctx.runs.record_trial(model, version, _trial_record(by_hash[outcome["hash"]], outcome))
    return finish_search(ctx, job, spec, version, steps, frame=frame)


def _fan_out(ctx: Context, job: dict[str, Any], spec: ModelSpec, run: dict[str, Any],
             pending: list[dict[str, Any]]) -> dict[str, Any]:
    model, version = spec.name, run["version"]
    # Trials read the spec of the run, not specs/<model>, which may change meanwhile: the
    # version's spec.json is written now (the same bytes registration writes later).
    ctx.store.put(layout.artifact_key(model, version, "spec.json"), spec.canonical_json().encode(),
                  content_type="application/json")
    if not run.get("dispatched"):  # a redelivered job re-sends only what a crash left unsent
        for trial in pending:
            ctx.train_queue.send({"type": "trial", "model": model, "run": version,
                                  "hash": trial["hash"], "dataset_key": job["dataset_key"],
                                  "job": job})
        ctx.runs.update_run(model, version, {"dispatched": True})
    return {"status": "running", "model": model, "version": version, "run": version,
            "trials": run["total"], "dispatched": len(pending) if not run.get("dispatched") else 0,
            "promoted": False}


def trial_job(ctx: Context, msg: dict[str, Any], steps: TrainSteps) -> dict[str, Any]:
    """One fanned-out trial: run it, record and count it; the last one finishes the run."""
    model, version, candidate, job = msg["model"], int(msg["run"]), msg["hash"], msg["job"]
    run = ctx.runs.get_run(model, version)
    base = {"model": model, "version": version, "run": version, "trial": candidate,
            "promoted": False}
    spec = load_spec_bytes(ctx.store.get(layout.artifact_key(model, version, "spec.json")),
                           source=f"run {version} spec")
    if run["status"] != RUNNING:
        return {**base, "status": "duplicate"}
    if ctx.runs.get_trial(model, version, candidate) is not None:
        if run["done"] == run["total"]:  # the finisher died: finish now (idempotent steps)
            return finish_search(ctx, job, spec, version, steps)
        return {**base, "status": "duplicate"}
    trial = next(t for t in run["trials"] if t["hash"] == candidate)
    frame = None
    if _remaining(ctx, run) == 0:
        outcome = skipped(trial, f"not started: the search budget max_seconds="
                                 f"{run['max_seconds']:g} was spent")
    else:
        frame = steps.read(ctx, job, spec)
        outcome = (run_trial(spec, frame, trial) if frame is not None else
                   {"hash": candidate, "status": "failed", "seconds": 0.0,
                    "reason": "dataset changed after validation"})
    recorded = ctx.runs.record_trial(model, version, _trial_record(trial, outcome))
    if recorded.completes_run:
        return finish_search(ctx, job, spec, version, steps, frame=frame)
    return {**base, "status": "trial", "trial_status": outcome["status"],
            "done": recorded.done, "total": recorded.total}


def rank_trials(run: dict[str, Any], trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Successful trials, best first (by CV mean of the run's metric; ties: planned order)."""
    metric, sign = run["metric"], 1 if run.get("higher_is_better", True) else -1
    ok = [t for t in trials if t.get("status") == "ok"
          and isinstance((t.get("cv") or {}).get(metric), (int, float))]
    return sorted(ok, key=lambda t: (-sign * t["cv"][metric], t.get("index", 0)))


def finish_search(ctx: Context, job: dict[str, Any], spec: ModelSpec, version: int,
                  steps: TrainSteps, *, frame: Any = None) -> dict[str, Any]:
    """Pick the winner, refit it (seeded: the same model its trial scored), and register it
    through the usual gates; a run without a successful trial rejects its version."""
    model = spec.name
    run, trials = ctx.runs.get_run(model, version), ctx.runs.trials(model, version)
    ranked = rank_trials(run, trials)
    counts = {s: sum(1 for t in trials if t.get("status") == s) for s in ("ok", "failed", "skipped")}
    base = {"model": model, "version": version, "run": version, "promoted": False}
    record = ctx.registry.get_version(model, version)
    if record["status"] != PENDING:  # registered before a crash: close the run, nothing else
        ctx.runs.finish_run(model, version, {"status": FINISHED, "counts": counts})
        return {**base, "status": "duplicate", "registry_status": record["status"]}
    if frame is None and ranked:
        frame = steps.read(ctx, job, spec)
    if not ranked or frame is None:
        first = next((t.get("reason") for t in trials if t.get("reason")), "no trial ran")
        reason = (f"every trial of run {version} failed or was skipped ({counts['failed']} failed, "
                  f"{counts['skipped']} skipped); first reason: {first}") if not ranked else \
            "dataset changed after validation"
        ctx.registry.complete_version(model, version, {"status": REJECTED, "reasons": [reason]})
        _page(ctx, ctx.runs.finish_run(model, version, {"status": FAILED, "reason": reason,
                                                        "counts": counts}), trials)
        ctx.notifier.publish(f"mlops-kit: {model} run {version} failed",
                             {"event": "run_failed", "model": model, "version": version,
                              "reason": reason})
        return {**base, "status": "rejected", "reasons": [reason]}
    best, metric = ranked[0], run["metric"]
    fitted = candidate_spec(spec, best)
    # the winner's spread over the search's CV folds is the noise: no second CV in train()
    result = train(fitted.model_copy(update={"promotion": fitted.promotion.model_copy(
        update={"significance": None})}), frame)
    result.cv_std = best.get("cv_std")
    experiment = {
        "run": version, "strategy": run["strategy"], "metric": metric, "trials": run["total"],
        **counts, "winner": {k: best.get(k) for k in ("hash", "kind", "params", "cv", "holdout")},
        "beat": [{"hash": t["hash"], "kind": t["kind"], "cv": t["cv"][metric]}
                 for t in ranked[1:MAX_BEAT + 1]],
    }
    lineage = {**record.get("lineage", {}), "estimator": best["kind"]}
    outcome = steps.register(ctx, job, spec, version, lineage, result, fitted_spec=fitted,
                             experiment=experiment)
    finished = ctx.runs.finish_run(model, version, {
        "status": FINISHED, "winner": best["hash"], "best": {metric: best["cv"][metric]},
        "counts": counts, "version_status": outcome["status"], "promoted": outcome["promoted"],
    })
    _page(ctx, finished, trials)
    _track(ctx, finished, trials, outcome)
    return {**outcome, "run": version, "experiment": {
        "trials": run["total"], **counts, "winner": best["hash"], "metric": metric,
        "cv": best["cv"][metric]}}


def fail_run(ctx: Context, model: str, run: int, reason: str) -> None:
    """A final failure outside the trials (data, spec, a bug) ends the run too, if it began."""
    try:
        ctx.runs.finish_run(model, run, {"status": FAILED, "reason": reason})
    except NotFound:
        pass  # failed before the run was created: the version says why


def _page(ctx: Context, run: dict[str, Any], trials: list[dict[str, Any]]) -> None:
    """The run as a page beside the version's artifacts (models/<model>/<version>/run.html)."""
    html = render_run_report(run_summary(run, trials), ranked_trials(run, trials))
    ctx.store.put(layout.artifact_key(run["model"], run["version"], "run.html"), html.encode(),
                  content_type="text/html; charset=utf-8")


def _track(ctx: Context, run: dict[str, Any], trials: list[dict[str, Any]],
           outcome: dict[str, Any]) -> None:
    """Mirror the run to the outside tracker (MLflow); its failure never fails the run."""
    if ctx.tracker is None or (run.get("tracking") or {}).get("run_id"):
        return
    try:
        record = ctx.registry.get_version(run["model"], run["version"])
        onnx = ctx.store.get(record["artifact_key"]) if record.get("artifact_key") else None
        run_id = ctx.tracker.log_run(run, trials, outcome, onnx)
        tracking: dict[str, Any] = {"run_id": run_id}
    except Exception as exc:  # noqa: BLE001 - the tracker is optional and outside our control
        log.warning("run %s of %s not logged to the tracker: %s", run["run"], run["model"], exc)
        tracking = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
    ctx.runs.update_run(run["model"], run["version"], {"tracking": tracking})


def _trial_record(trial: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    out = {"hash": trial["hash"], "index": trial["index"], "kind": trial["kind"],
           "params": trial["params"], **{k: v for k, v in outcome.items() if k != "hash"}}
    return _finite(out)


def _finite(value: Any) -> Any:
    """NaN/inf (a degenerate fold) become null: the table and --json take only finite numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _remaining(ctx: Context, run: dict[str, Any]) -> float | None:
    if not run.get("max_seconds"):
        return None
    spent = (ctx.clock.now() - datetime.fromisoformat(run["started_at"])).total_seconds()
    return max(0.0, float(run["max_seconds"]) - spent)


def _engine(ctx: Context) -> str:
    if ctx.fan_out_trials:
        return "queue"
    runner = ctx.trial_runner
    if runner is None or runner is run_sequential:
        return "sequential"
    return str(getattr(runner, "engine", None) or type(runner).__name__)
