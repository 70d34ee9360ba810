"""Experiments: a 20-candidate grid search (4 kinds, 3-fold CV) on the demo data (4,000 churn
rows, the training split of 3,200), wall time of the search:

- the kit's local engine: `JoblibRunner` (loky worker processes, one per core) running the
  trials of `plan_search` (each trial: 3 CV fits + 1 fit on the whole split for the holdout);
- a sequential loop over the same trials (`run_sequential`: identical work, one process);
- scikit-learn's `GridSearchCV(n_jobs=-1)` on the same 20 candidates (one single-point grid per
  candidate: preprocessing and estimator swapped as pipeline steps), the same folds and seeds,
  refit=True (3 CV fits per candidate + 1 refit of the best).
Plus the whole lifecycle with that spec (upload -> validate -> trials -> refit winner -> ONNX ->
parity -> register -> champion) on the local backend.

The kit does 4 fits per candidate where GridSearchCV does 3 (its holdout fit is what records
holdout metrics per trial); the fit counts are in the notes. The engines share joblib's warm
loky executor (warmed once before timing); runs are interleaved."""

from __future__ import annotations

import json
import time
from pathlib import Path

from common import TRAIN_ROWS, parse_args, row, settings_for, summary, write_result

CANDIDATES = [  # 4 + 6 + 4 + 6 = 20; sized so one interleaved round takes ~1-2 min on 2 cores
    {"kind": "logistic_regression", "grid": {"C": [0.01, 0.1, 1.0, 10.0]}},
    {"kind": "random_forest", "params": {"n_estimators": 25, "n_jobs": 1},
     "grid": {"max_depth": [4, 8, None], "min_samples_leaf": [1, 5]}},
    {"kind": "hist_gradient_boosting", "params": {"max_iter": 50},
     "grid": {"learning_rate": [0.05, 0.2], "max_depth": [3, None]}},
    {"kind": "gradient_boosting", "grid": {"n_estimators": [30, 60, 90], "max_depth": [2, 3]}},
]
SMOKE_CANDIDATES = [
    {"kind": "logistic_regression", "grid": {"C": [0.1, 1.0]}},
    {"kind": "random_forest", "params": {"n_estimators": 5}, "grid": {"max_depth": [3, None]}},
]


def search_spec(smoke: bool) -> dict:
    from mlops_kit.core.synthetic import CHURN_SPEC

    return {**CHURN_SPEC, "promotion": {**CHURN_SPEC["promotion"], "minimum": None},
            "search": {"strategy": "grid", "cv": 3, "max_candidates": 20,
                       "include_estimator": False,
                       "candidates": SMOKE_CANDIDATES if smoke else CANDIDATES}}


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def kit_search(runner, spec, frame, trials) -> tuple[float, dict]:
    seconds, outcomes = timed(lambda: list(runner(spec, frame, trials)))
    ok = [o for o in outcomes if o["status"] == "ok"]
    metric = spec.search.metric or spec.promotion.metric
    best = max(ok, key=lambda o: o["cv"][metric])
    return seconds, {"best": best["hash"], "ok": len(ok), "best_cv": best["cv"][metric]}


def grid_search_cv(spec, frame, trials, workers: int) -> tuple[float, dict]:
    import warnings

    import numpy as np
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    from mlops_kit.core.training.fit import build_pipeline, split_frame
    from mlops_kit.core.training.search import candidate_spec

    X_train, _, y_train, _ = split_frame(spec, frame)
    grid = []
    for t in trials:  # one single-point grid per candidate: exactly the kit's 20 candidates
        p = build_pipeline(candidate_spec(spec, t))
        grid.append({"preprocess": [p.named_steps["preprocess"]], "model": [p.named_steps["model"]]})
    base = build_pipeline(candidate_spec(spec, trials[0]))
    cv = StratifiedKFold(spec.search.cv, shuffle=True, random_state=spec.seed)
    search = GridSearchCV(base, grid, scoring="roc_auc", cv=cv, n_jobs=workers, refit=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds, _ = timed(lambda: search.fit(X_train, np.asarray(y_train)))
    best = trials[int(search.best_index_)]["hash"]
    return seconds, {"best": best, "best_cv": float(search.best_score_)}


def lifecycle(workdir: Path, data: Path, spec_d: dict) -> tuple[float, dict]:
    import yaml

    from mlops_kit.bootstrap import local_backend
    from mlops_kit.local.worker import run_once, upload

    b = local_backend(settings_for(workdir / f"exp-{time.time_ns()}", capture=False))
    b.ctx.store.put("specs/churn.yaml", yaml.safe_dump(spec_d).encode())
    t0 = time.perf_counter()
    upload(b, data, "churn")
    results = run_once(b)
    seconds = time.perf_counter() - t0
    if results[-1].get("status") != "registered":
        raise RuntimeError(f"experiments bench: the search did not register: {results[-1]}")
    return seconds, results[-1]["experiment"]


def main() -> None:
    args = parse_args(__doc__)
    import io
    import os

    from joblib import Parallel, delayed

    from mlops_kit.core.spec import parse_spec
    from mlops_kit.core.synthetic import churn_csv
    from mlops_kit.core.training.fit import read_frame
    from mlops_kit.core.training.search import plan_search
    from mlops_kit.core.training.trials import JoblibRunner, run_sequential

    n = 600 if args.smoke else TRAIN_ROWS
    repeats = 1 if args.smoke else 3
    raw = churn_csv(n, seed=7)
    data = args.workdir / f"experiments-{n}.csv"
    data.write_bytes(raw)
    spec_d = search_spec(args.smoke)
    spec = parse_spec(spec_d)
    frame = read_frame(io.BytesIO(raw), "csv", spec)
    trials = plan_search(spec).trials
    workers = len(os.sched_getaffinity(0))
    Parallel(n_jobs=workers)(delayed(abs)(i) for i in range(workers * 2))  # warm loky once
    kit, seq, gs, life = [], [], [], []
    info: dict = {}
    for _ in range(repeats):  # interleaved, so drift on a shared machine hits all alike
        s, info["kit"] = kit_search(JoblibRunner(workers), spec, frame, trials)
        kit.append(s)
        s, info["grid"] = grid_search_cv(spec, frame, trials, -1)
        gs.append(s)
        s, info["seq"] = kit_search(run_sequential, spec, frame, trials)
        seq.append(s)
        s, info["lifecycle"] = lifecycle(args.workdir, data, spec_d)
        life.append(s)
    k, q, g, lc = summary(kit), summary(seq), summary(gs), summary(life)
    c = len(trials)
    same = info["kit"]["best"] == info["grid"]["best"] == info["seq"]["best"]
    fits = (f"fits: kit {c * (spec.search.cv + 1)} ({spec.search.cv} CV + 1 holdout per trial), "
            f"GridSearchCV {c * spec.search.cv + 1} ({spec.search.cv} CV per candidate + refit)")
    winner = (f"same winner in all three: {'yes' if same else 'NO'} ({info['kit']['best']}, "
              f"CV roc_auc {info['kit']['best_cv']:.4f} vs GridSearchCV "
              f"{info['grid']['best_cv']:.4f})")
    rows = [
        row(f"experiments, {c}-candidate grid search, {n:,} rows", "churn",
            f"search wall time, {workers} worker processes vs a sequential loop", k, "s",
            baseline="the same trials one after another (run_sequential)", baseline_stats=q,
            ratio=q["median"] / k["median"], ratio_label="x faster",
            note=f"{c} trials x 4 fits; {winner}"),
        row(f"experiments, {c}-candidate grid search, {n:,} rows", "churn",
            "search wall time vs GridSearchCV(n_jobs=-1)", k, "s",
            baseline="sklearn GridSearchCV(n_jobs=-1), same candidates, folds, seeds",
            baseline_stats=g, ratio=k["median"] / g["median"],
            ratio_label="x GridSearchCV's time", note=fits),
        row(f"experiments, {c}-candidate search: upload -> registered champion", "churn",
            "lifecycle wall time (validate, trials, refit, ONNX, parity, register)", lc, "s",
            baseline="sklearn GridSearchCV(n_jobs=-1), search only", baseline_stats=g,
            ratio=lc["median"] / g["median"], ratio_label="x GridSearchCV's time",
            note="the kit's figure includes validation, the winner's refit, ONNX export, "
                 f"parity and registration; {info['lifecycle']['ok']} of "
                 f"{info['lifecycle']['trials']} trials ok"),
    ]
    path = write_result("experiments", rows, smoke=args.smoke, out_dir=args.out,
                        extra={"candidates": c, "workers": workers, "train_rows": n,
                               "winners": info})
    print(path)
    print(json.dumps({"kit": kit, "sequential": seq, "gridsearchcv": gs, "lifecycle": life,
                      "winners": info}, indent=1, default=str))


if __name__ == "__main__":
    main()
