"""Training beyond the function (issue 15): a 2M-row dataset trained through the large-job
path on the local backend (validate -> route by size -> `python -m mlops_kit.train_job` in a
separate process -> registered champion), and the sizing estimate (core/sizing.py, recorded
in the validation report) against the trainer's measured peak RSS (ru_maxrss of that
process, which is what Batch would have to fit).

Rows:
- the headline: 2M churn rows, routed to the large-job path by size (default thresholds);
  wall time upload -> registered champion, vs the same upload trained in-process by the
  worker (the function path) in the same run: the separate process should cost nothing.
- estimate vs measured peak for the headline and a calibration grid (other shapes, sizes and
  estimators, each through the same path): the estimate must not be below the peak (a job sent
  to a function must fit) and should not be far above it (target 1.0-1.5x).

`--fit` also prints the least-squares constants of the estimate for the measured grid
(how core/sizing.py's constants were chosen).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from common import parse_args, row, summary, write_result

HEADLINE_ROWS = 2_000_000
# (case, shape, rows, estimator kind, params)
GRID = [
    ("churn-lr-250k", "churn", 250_000, "logistic_regression", {}),
    ("churn-hgb-500k", "churn", 500_000, "hist_gradient_boosting", {}),
    ("churn-gb-250k", "churn", 250_000, "gradient_boosting", {"n_estimators": 20,
                                                                "max_depth": 3}),
    ("churn-rf-100k", "churn", 100_000, "random_forest", {"n_estimators": 20, "max_depth": 12,
                                                           "n_jobs": 1}),
    ("wide-lr-250k", "wide", 250_000, "logistic_regression", {}),
    ("cats-lr-250k", "cats", 250_000, "logistic_regression", {}),
]
SMOKE_GRID = [("churn-lr-smoke", "churn", 3000, "logistic_regression", {})]


def shape_spec(shape: str, kind: str, params: dict) -> dict:
    from mlops_kit.core.synthetic import CHURN_SPEC

    base = {**CHURN_SPEC, "estimator": {"kind": kind, "params": params},
            "promotion": {**CHURN_SPEC["promotion"], "minimum": None},
            "training": {"engine": "batch"}}
    if shape == "churn":
        return base
    if shape == "wide":  # 24 numeric features, no categories
        feats = [{"name": f"n{i}", "type": "numeric"} for i in range(24)]
    else:  # 3 categorical features of 40 categories each + 2 numeric
        feats = [{"name": f"n{i}", "type": "numeric"} for i in range(2)]
        feats += [{"name": f"c{i}", "type": "categorical",
                   "categories": [f"v{j}" for j in range(40)]} for i in range(3)]
    return {**base, "features": feats}


def write_dataset(shape: str, n: int, path: Path) -> Path:
    """numpy + pyarrow: millions of rows in seconds, the churn data from core/synthetic."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if path.exists():
        return path
    if shape == "churn":
        from mlops_kit.core.synthetic import COLUMNS, churn_columns

        cols = churn_columns(n, seed=5)
        table = pa.table({c: pa.array(cols[c]) for c in COLUMNS})
    else:
        rng = np.random.default_rng(n)
        data: dict[str, pa.Array] = {}
        logit = np.zeros(n)
        for i in range(24 if shape == "wide" else 2):
            x = rng.normal(0, 1, n).round(4)
            logit += x * (0.3 if i % 2 else -0.2)
            data[f"n{i}"] = pa.array(x)
        if shape == "cats":
            for i in range(3):
                idx = rng.integers(0, 40, n)
                logit += (idx % 5 - 2) * 0.2
                data[f"c{i}"] = pa.array([f"v{j}" for j in range(40)]).take(pa.array(idx))
        data["churned"] = pa.array((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64))
        table = pa.table(data)
    pacsv.write_csv(table, path)
    return path


def run_case(workdir: Path, case: str, shape: str, n: int, kind: str, params: dict, *,
             engine: str | None = "batch", **settings) -> dict:
    """Upload -> validate -> route -> train (separate process, or in-process) -> registered."""
    import yaml

    from mlops_kit.bootstrap import local_backend
    from mlops_kit.local.worker import run_once, upload
    from mlops_kit.settings import Settings

    data = write_dataset(shape, n, workdir / f"{shape}-{n}.csv")
    ws = workdir / f"ws-{case}"
    b = local_backend(Settings(workspace=ws, backend="local", capture=False, **settings))
    spec = shape_spec(shape, kind, params)
    if engine is None:
        spec.pop("training")
    else:
        spec["training"] = {"engine": engine}
    b.ctx.store.put("specs/churn.yaml", yaml.safe_dump(spec).encode())
    t0 = time.perf_counter()
    upload(b, data, "churn")
    results = run_once(b)
    wall = time.perf_counter() - t0
    [version] = b.ctx.registry.list_versions("churn")
    if version["status"] != "registered":
        raise RuntimeError(f"{case}: {version['status']} {version.get('reasons')}: {results}")
    report = json.loads(b.ctx.store.get(version["lineage"]["validation_report"]))
    routed = next((r for r in results if r.get("engine")), {})
    out = {"case": case, "rows": n, "bytes": data.stat().st_size, "wall_s": wall,
           "size": report["size"], "engine": routed.get("engine"), "route": routed.get("route")}
    states = [json.loads(p.read_text()) for p in (ws / "jobs").glob("*/state.json")]
    if states:
        [state] = states
        out.update(peak_mb=state["attempts"][-1]["max_rss_mb"],
                   cpu_s=state["attempts"][-1]["seconds"])
    return out


def estimate_row(r: dict, note: str = "") -> dict:
    est, peak = r["size"]["estimated_peak_mb"], r["peak_mb"]
    ratio = est / peak
    return row(f"sizing estimate vs measured peak, {r['case']}", None,
               "estimated peak memory / measured", summary([est]), "MB",
               baseline="measured peak RSS of the train_job process", baseline_stats=summary(
                   [peak]), ratio=round(ratio, 2), ratio_label="x the measured peak",
               target="1.0-1.5x (never below)", met=1.0 <= ratio <= 1.5,
               note=f"{r['rows']:,} rows, {r['bytes'] / 1e6:.0f} MB file, design width "
                    f"{r['size']['design_width']}, tree nodes <= {r['size']['tree_nodes']:,}; "
                    f"{note}")


def fit(results: list[dict]) -> None:
    """Non-negative least squares of the measured peaks over the estimate's terms (how
    core/sizing.py's constants were chosen; tree nodes are taken at NODE_BYTES)."""
    import numpy as np
    from scipy.optimize import nnls

    from mlops_kit.core import sizing
    from mlops_kit.core.spec import parse_spec

    cases = {g[0]: g for g in GRID}
    X, y = [], []
    for r in results:
        _, shape, _, kind, params = cases.get(r["case"], (None, "churn", 0,
                                                          "hist_gradient_boosting", {}))
        spec = parse_spec(shape_spec(shape, kind, params))
        n, s = r["rows"], r["size"]
        X.append([1.0, n * (len(spec.numeric) + 1) / sizing.MB,
                  n * len(spec.categorical) / sizing.MB, n * s["design_width"] / sizing.MB])
        y.append(r["peak_mb"] - sizing.NODE_BYTES * s["tree_nodes"] / sizing.MB)
    coef, _ = nnls(np.array(X), np.array(y))
    for name, c in zip(("BASE_MB", "NUMERIC_CELL", "CATEGORICAL_CELL", "DENSE_CELL"), coef,
                       strict=True):
        print(f"  {name:>16}: {c:,.1f}")


def main() -> None:
    fit_too = "--fit" in sys.argv
    if fit_too:
        sys.argv.remove("--fit")
    args = parse_args(__doc__.splitlines()[0])
    work = args.workdir / "batch_training"
    work.mkdir(parents=True, exist_ok=True)
    rows, results = [], []
    headline_n = 5000 if args.smoke else HEADLINE_ROWS
    # the headline goes to the large-job path by size alone (engine: auto, default limits;
    # smoke lowers the row limit so a tiny file takes the same path)
    limit = {"train_max_function_rows": 1000} if args.smoke else {}
    big = run_case(work, "headline", "churn", headline_n, "hist_gradient_boosting", {},
                   engine=None, **limit)
    assert big["engine"] == "process", big
    results.append(big)
    inproc = run_case(work, "headline-in-process", "churn", headline_n,
                      "hist_gradient_boosting", {}, engine="function")
    rows.append(row(
        f"large-job path, {headline_n:,} rows: upload -> registered champion", "churn",
        "wall time", summary([big["wall_s"]]), "s",
        baseline="the same upload trained in-process by the worker (the function path)",
        baseline_stats=summary([inproc["wall_s"]]),
        ratio=round(big["wall_s"] / inproc["wall_s"], 2), ratio_label="x the in-process time",
        note=f"one run each (noisy on a shared machine); hist_gradient_boosting; routed: "
             f"{big['route']}; trainer peak "
             f"{big['peak_mb']:.0f} MB, CPU {big['cpu_s']:.0f} s; "
             f"{big['bytes'] / 1e6:.0f} MB CSV"))
    rows.append(estimate_row(big, "the headline"))
    for case in SMOKE_GRID if args.smoke else GRID:
        r = run_case(work, *case)
        results.append(r)
        rows.append(estimate_row(r, f"{case[3]} {case[4] or ''}".strip()))
    if fit_too:
        fit(results)
    write_result("batch_training", rows, smoke=args.smoke, out_dir=args.out,
                 extra={"cases": results})
    for r in rows:
        print(f"{r['figure']}: {r['stats']['median']:.1f} {r['unit']} "
              f"(baseline {r['baseline_stats']['median']:.1f}; {r['ratio']} {r['ratio_label']})")


if __name__ == "__main__":
    main()
