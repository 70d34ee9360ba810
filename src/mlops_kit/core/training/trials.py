"""One trial of a search (cross-validation on the training split, then a fit on the whole
split scored on the holdout), and the injectable runners that execute many of them.

A runner is any callable `(spec, frame, trials, *, max_seconds=None) -> Iterator[outcome]`
(ports.TrialRunner) yielding one outcome per trial as each finishes, in any order:
- `run_sequential`: in this process (tests, Lambda, where there are no worker processes);
- `JoblibRunner(workers)`: joblib's loky worker processes (the local runtime, a Batch
  container): warm workers reused across runs, inner BLAS/OpenMP threads capped per worker.
Seeds come from the spec, so an outcome does not depend on the worker or the order.

Importing this module imports no scikit-learn: the composition root builds runners cheaply.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable, Iterator
from typing import Any

from mlops_kit.errors import MlopsKitError

__all__ = ["JoblibRunner", "run_sequential", "run_trial", "skipped"]


def run_trial(spec: Any, frame: Any, trial: dict[str, Any]) -> dict[str, Any]:
    """Score one candidate. Never raises for a candidate's own failure: the outcome says
    `failed` with the reason (a failed trial must not fail the run)."""
    started = time.perf_counter()
    try:
        return {**_score(spec, frame, trial, started), "hash": trial["hash"], "status": "ok"}
    except MlopsKitError as exc:
        reason = exc.message
    except MemoryError:
        reason = "out of memory"
    except Exception as exc:  # noqa: BLE001 - any estimator error is this candidate's failure
        frame_info = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" ({frame_info[0].name})" if frame_info else ""
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{where}"
    return {"hash": trial["hash"], "status": "failed", "reason": reason[:500],
            "seconds": round(time.perf_counter() - started, 4)}


def skipped(trial: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"hash": trial["hash"], "status": "skipped", "reason": reason, "seconds": 0.0}


def _score(spec: Any, frame: Any, trial: dict[str, Any], started: float) -> dict[str, Any]:
    import warnings

    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    from mlops_kit.core.metrics import compute_metrics
    from mlops_kit.core.training.fit import fit_pipeline, split_frame
    from mlops_kit.core.training.search import candidate_spec

    folds = spec.search.cv
    tspec = candidate_spec(spec, trial)
    X_train, X_hold, y_train, y_hold = split_frame(tspec, frame)
    y_train = np.asarray(y_train)
    classification = tspec.task.is_classification
    splitter = (StratifiedKFold if classification else KFold)(folds, shuffle=True,
                                                              random_state=spec.seed)
    per_fold: list[dict[str, float]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of weak candidates
        for train_idx, test_idx in splitter.split(X_train, y_train):
            model = fit_pipeline(tspec, X_train.iloc[train_idx], y_train[train_idx])
            per_fold.append(_metrics(compute_metrics, tspec, model, X_train.iloc[test_idx],
                                     y_train[test_idx]))
        fit_started = time.perf_counter()
        model = fit_pipeline(tspec, X_train, y_train)
        fit_seconds = time.perf_counter() - fit_started
        holdout = _metrics(compute_metrics, tspec, model, X_hold, np.asarray(y_hold))
    names = sorted(set.intersection(*(set(m) for m in per_fold)))
    cv = {n: float(np.mean([m[n] for m in per_fold])) for n in names}
    cv_std = {n: float(np.std([m[n] for m in per_fold])) for n in names}
    return {"cv": cv, "cv_std": cv_std, "holdout": holdout, "folds": folds,
            "fit_seconds": round(fit_seconds, 4),
            "seconds": round(time.perf_counter() - started, 4)}


def _metrics(compute_metrics, spec, model, X, y) -> dict[str, float]:
    predictions = model.predict(X)
    if spec.task.is_classification:
        classes = [c.item() if hasattr(c, "item") else c for c in model.classes_]
        return compute_metrics(spec.task.value, y, predictions, model.predict_proba(X), classes,
                               spec.positive_class)
    return compute_metrics(spec.task.value, y, predictions, None, None)


def _budget(trials: Iterable[dict[str, Any]], max_seconds: float | None):
    """Yield (trial, start?) pairs; past the time budget, trials are not started."""
    begin = time.monotonic()
    for trial in trials:
        over = max_seconds is not None and time.monotonic() - begin >= max_seconds
        yield trial, not over


def _budget_reason(max_seconds: float | None) -> str:
    return f"not started: the search budget max_seconds={max_seconds:g} was spent"


def run_sequential(spec: Any, frame: Any, trials: list[dict[str, Any]], *,
                   max_seconds: float | None = None) -> Iterator[dict[str, Any]]:
    for trial, start in _budget(trials, max_seconds):
        yield run_trial(spec, frame, trial) if start else skipped(trial, _budget_reason(max_seconds))


class JoblibRunner:
    """Trials in `workers` loky processes (joblib, the engine behind scikit-learn's n_jobs).

    Work is handed out lazily (pre_dispatch), so the time budget is checked when a worker
    frees up, not once up front. A crashed worker fails the trials it held, not the run."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))
        self.engine = f"processes({self.workers})"

    def __call__(self, spec: Any, frame: Any, trials: list[dict[str, Any]], *,
                 max_seconds: float | None = None) -> Iterator[dict[str, Any]]:
        workers = min(self.workers, max(1, len(trials)))
        if workers == 1:
            yield from run_sequential(spec, frame, trials, max_seconds=max_seconds)
            return
        from joblib import Parallel, delayed

        tasks = (delayed(run_trial)(spec, frame, t) if start
                 else delayed(skipped)(t, _budget_reason(max_seconds))
                 for t, start in _budget(trials, max_seconds))
        parallel = Parallel(n_jobs=workers, backend="loky", pre_dispatch="n_jobs",
                            return_as="generator_unordered")
        done: set[str] = set()
        try:
            for outcome in parallel(tasks):
                done.add(outcome["hash"])
                yield outcome
        except Exception as exc:  # noqa: BLE001 - e.g. a worker killed by the OOM killer
            reason = f"worker failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            for t in trials:
                if t["hash"] not in done:
                    yield {"hash": t["hash"], "status": "failed", "reason": reason,
                           "seconds": 0.0}
