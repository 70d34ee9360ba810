"""What every benchmark shares: machine facts, statistics, result files, and the two benchmark
models (the demo churn model and a 100-tree random forest) trained once per work dir, each
served by the kit (ONNX in a local-backend workspace) and saved as the sklearn/joblib baseline.

Every script is runnable alone (`python bench/<name>.py [--smoke] [--workdir DIR]`) and writes
bench/results/<name>.json: {"name", "machine", "smoke", "rows": [row, ...]}; a row is one figure
(see `row`). bench/run_all.py runs them all and renders bench/README.md from the JSON files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
FUNCTIONS = ROOT / "functions"
for p in (str(ROOT / "src"), str(ROOT), str(FUNCTIONS), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

MODELS = ("churn", "churn_rf")  # demo model (gradient boosting, 60 trees) and a 100-tree forest
MODEL_LABELS = {"churn": "demo (GB 60 trees)", "churn_rf": "random forest (100 trees)"}
TRAIN_ROWS = 4000  # what `mlops-kit demo` trains on


# -- facts ---------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("onnxruntime", "numpy", "pydantic", "scikit-learn", "pandas", "pyarrow",
                 "joblib", "skl2onnx"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                                capture_output=True, check=False).stdout.strip() or None
    except OSError:
        commit = None
    return {"cpu_count": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions, "commit": commit}


# -- statistics ----------------------------------------------------------------------------
def summary(values: Sequence[float]) -> dict[str, float]:
    """Median and spread. p25/p75 need a few samples; min/max are always there."""
    v = sorted(float(x) for x in values)
    if not v:
        raise ValueError("no samples")

    def pct(q: float) -> float:
        if len(v) == 1:
            return v[0]
        k = (len(v) - 1) * q
        lo = int(k)
        hi = min(lo + 1, len(v) - 1)
        return v[lo] + (v[hi] - v[lo]) * (k - lo)

    return {"median": statistics.median(v), "p25": pct(0.25), "p75": pct(0.75),
            "p99": pct(0.99), "min": v[0], "max": v[-1], "n": len(v)}


def time_calls(fn: Callable[[], Any], n: int, warmup: int = 20) -> list[float]:
    """Per-call wall times in milliseconds."""
    for _ in range(warmup):
        fn()
    out = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        fn()
        out.append((clock() - t0) * 1000)
    return out


def row(figure: str, model: str | None, metric: str, stats: dict[str, float], unit: str, *,
        baseline: str | None = None, baseline_stats: dict[str, float] | None = None,
        ratio: float | None = None, ratio_label: str = "", target: str | None = None,
        met: bool | None = None, note: str = "", **extra: Any) -> dict[str, Any]:
    """One table row. `ratio` is how this figure compares with its baseline (ratio_label says
    which way round); `met` is None when the figure has no target."""
    return {"figure": figure, "model": model, "metric": metric, "unit": unit, "stats": stats,
            "baseline": baseline, "baseline_stats": baseline_stats, "ratio": ratio,
            "ratio_label": ratio_label, "target": target, "met": met, "note": note, **extra}


def write_result(name: str, rows: list[dict[str, Any]], *, smoke: bool, out_dir: Path | None,
                 extra: dict[str, Any] | None = None) -> Path:
    out_dir = Path(out_dir or RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {"name": name, "machine": machine(), "smoke": smoke, "rows": rows,
           "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(extra or {})}
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return path


def parse_args(description: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--smoke", action="store_true", help="tiny inputs, seconds; for the tests")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="shared scratch dir (models, data files); a temp dir by default")
    ap.add_argument("--out", type=Path, default=None, help="results dir (bench/results)")
    args = ap.parse_args()
    if args.workdir is None:
        args.workdir = Path(tempfile.mkdtemp(prefix="mlops-kit-bench-"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    return args


# -- the benchmark models -------------------------------------------------------------------
def bench_specs(smoke: bool) -> dict[str, dict]:
    from mlops_kit.core.synthetic import CHURN_SPEC

    rf_trees = 10 if smoke else 100
    base = dict(CHURN_SPEC)
    if smoke:  # few rows: do not let the promotion minimum refuse the tiny model
        base["promotion"] = {**CHURN_SPEC["promotion"], "minimum": None}
    return {
        "churn": base,
        "churn_rf": {**base, "name": "churn_rf",
                     "estimator": {"kind": "random_forest",
                                   "params": {"n_estimators": rf_trees, "n_jobs": 1}},
                     # 100 unbounded trees on 100k rows: sizing's upper bound on the forest
                     # routes it to the large-job process (a second process, its own imports);
                     # the figures compare the same in-process work as the baseline
                     "training": {"engine": "function"}},
    }


def settings_for(workspace: Path, **overrides: Any):
    from mlops_kit.settings import Settings

    return Settings(workspace=workspace, backend="local", **overrides)


def serve_env(workspace: Path) -> dict[str, str]:
    """The environment a serve function gets (local backend instead of S3/DynamoDB)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPSKIT_")}
    env.update(MLOPSKIT_BACKEND="local", MLOPSKIT_WORKSPACE=str(workspace),
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(FUNCTIONS), str(BENCH)]))
    return env


def prepare_models(workdir: Path, smoke: bool = False) -> dict[str, Any]:
    """Train both models through the kit's lifecycle (upload -> validate -> train -> ONNX ->
    promote) into workdir/ws, and the same pipelines (same data, same seed: deterministic) as
    joblib files for the baseline. Reused when already there."""
    workdir = Path(workdir)
    ws = workdir / "ws"
    done = workdir / "models.json"
    if done.exists():
        return json.loads(done.read_text())
    import joblib
    import yaml

    from mlops_kit.bootstrap import local_backend
    from mlops_kit.core.spec import parse_spec
    from mlops_kit.core.synthetic import churn_csv
    from mlops_kit.core.training.fit import read_frame, train
    from mlops_kit.local.worker import run_once, upload

    rows = 600 if smoke else TRAIN_ROWS
    backend = local_backend(settings_for(ws, capture=False))
    data = workdir / "churn-train.csv"
    data.write_bytes(churn_csv(rows, seed=7))
    info: dict[str, Any] = {"workspace": str(ws), "train_rows": rows, "models": {}}
    for name, spec_d in bench_specs(smoke).items():
        backend.ctx.store.put(f"specs/{name}.yaml", yaml.safe_dump(spec_d).encode())
        upload(backend, data, name)
        results = run_once(backend)
        trained = [r for r in results if r.get("model") == name and "version" in r]
        if not trained or not trained[-1].get("promoted"):
            raise RuntimeError(f"bench model {name} was not promoted: {results}")
        spec = parse_spec(spec_d)
        with open(data, "rb") as f:
            pipeline = train(spec, read_frame(f, "csv", spec)).pipeline
        path = workdir / f"{name}.joblib"
        joblib.dump(pipeline, path)
        info["models"][name] = {"version": trained[-1]["version"], "joblib": str(path),
                                "joblib_bytes": path.stat().st_size,
                                "onnx_bytes": len(backend.ctx.store.get(
                                    f"models/{name}/{trained[-1]['version']:06d}/model.onnx")),
                                "features": spec.feature_names,
                                "categorical": [f.name for f in spec.categorical]}
    done.write_text(json.dumps(info, indent=2))
    return info


def feature_records(n: int, seed: int = 3) -> list[dict]:
    from mlops_kit.core.synthetic import churn_records

    return [{k: v for k, v in r.items() if k not in ("churned", "customer_id")}
            for r in churn_records(n, seed=seed)]


def http_event(model: str, instances: list[dict], request_id: str = "bench-0") -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) request to the V1 predict route."""
    path = f"/v1/models/{model}:predict"
    return {
        "version": "2.0", "routeKey": "POST /v1/models/{proxy+}", "rawPath": path,
        "rawQueryString": "", "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "127.0.0.1"},
                           "requestId": request_id, "stage": "$default"},
        "body": json.dumps({"instances": instances}), "isBase64Encoded": False,
    }


def fmt_num(x: float | None) -> str:
    if x is None:
        return "–"
    a = abs(x)
    if a >= 100_000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"
