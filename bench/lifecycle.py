"""Lifecycle: upload -> serving champion for a 100k-row churn dataset on the local backend
(runtime.upload + run_once, then the first prediction), per stage, for both models. Stages are
timed by wrapping the core functions the use cases call (nothing is re-implemented):
validate (validate_dataset), read (read_frame), train (train), export + parity (to_onnx +
parity_check), register/promote (registry writes), first prediction (load + answer).

Baseline: what a user writes instead: pandas.read_csv, the same sklearn pipeline fit, and
joblib.dump (no validation, no ONNX, no registry)."""

from __future__ import annotations

import importlib
import json
import time
from collections import defaultdict
from pathlib import Path

from common import (
    MODEL_LABELS,
    MODELS,
    bench_specs,
    feature_records,
    parse_args,
    row,
    settings_for,
    summary,
    write_result,
)


def timed(stages: dict[str, float], stage: str, fn):
    def wrapper(*a, **kw):
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            stages[stage] += time.perf_counter() - t0
    return wrapper


def run_kit(workdir: Path, data: Path, model: str, spec_d: dict) -> dict[str, float]:
    import yaml

    from mlops_kit.bootstrap import local_backend
    from mlops_kit.core.registry import Registry
    from mlops_kit.core.training import export
    from mlops_kit.core.training import fit as training
    from mlops_kit.core.validation import validator as validation
    from mlops_kit.local.worker import run_once, upload

    # import every module that binds these functions by name before patching them
    for mod in ("mlops_kit.core.router", "mlops_kit.core.training.usecase",
                "mlops_kit.core.training.experiment", "mlops_kit.core.validation.usecase"):
        importlib.import_module(mod)
    stages: dict[str, float] = defaultdict(float)
    patches = [(validation, "validate_dataset", "validate"), (training, "read_frame", "read"),
               (training, "train", "train"), (export, "to_onnx", "export + parity"),
               (export, "parity_check", "export + parity"),
               (Registry, "complete_version", "register/promote"),
               (Registry, "promote", "register/promote"),
               (Registry, "reserve_version", "register/promote")]
    # a function is patched where it is defined and wherever a module imported it by name
    # (`from ... import to_onnx` binds its own reference)
    import sys

    saved = []
    for obj, name, stage in patches:
        original = getattr(obj, name)
        wrapped = timed(stages, stage, original)
        holders = [obj] + [m for m in list(sys.modules.values())
                           if getattr(m, "__name__", "").startswith("mlops_kit")
                           and m is not obj and getattr(m, name, None) is original]
        for holder in holders:
            saved.append((holder, name, original))
            setattr(holder, name, wrapped)
    try:
        ws = workdir / f"lifecycle-{model}-{time.time_ns()}"
        b = local_backend(settings_for(ws, capture=False))
        b.ctx.store.put(f"specs/{model}.yaml", yaml.safe_dump(spec_d).encode())
        t0 = time.perf_counter()
        upload(b, data, model)
        stages["upload"] = time.perf_counter() - t0
        results = run_once(b)
        t1 = time.perf_counter()
        trained = [r for r in results if "version" in r]
        if not trained or not trained[-1].get("promoted"):
            raise RuntimeError(f"lifecycle bench: {model} not promoted: {results}")
        out = b.service(capture=False).predict(model, feature_records(1))
        assert out["version"] == trained[-1]["version"]
        stages["first prediction"] = time.perf_counter() - t1
        stages["total"] = time.perf_counter() - t0
    finally:
        for obj, name, fn in saved:
            setattr(obj, name, fn)
    named = sum(v for k, v in stages.items() if k != "total")
    stages["other (queues, reports, artifacts)"] = stages["total"] - named
    return dict(stages)


def run_baseline(data: Path, model: str, spec_d: dict, workdir: Path) -> float:
    import joblib
    import numpy as np
    import pandas as pd

    from mlops_kit.core.spec import parse_spec
    from mlops_kit.core.training.fit import build_pipeline

    spec = parse_spec(spec_d)
    t0 = time.perf_counter()
    df = pd.read_csv(data)
    for f in spec.categorical:
        df[f.name] = df[f.name].fillna("__missing__").astype(object)
    X = df[spec.feature_names].astype({f.name: np.float32 for f in spec.numeric})
    pipeline = build_pipeline(spec).fit(X, df[spec.target])
    joblib.dump(pipeline, workdir / f"baseline-{model}.joblib")
    return time.perf_counter() - t0


def main() -> None:
    args = parse_args(__doc__)
    from mlops_kit.core.synthetic import churn_csv

    n = 3_000 if args.smoke else 100_000
    repeats = 1 if args.smoke else 2
    data = args.workdir / f"churn-{n}.csv"
    if not data.exists():
        data.write_bytes(churn_csv(n, seed=17))
    rows = []
    for model, spec_d in bench_specs(args.smoke).items():
        if model not in MODELS:
            continue
        runs = [run_kit(args.workdir, data, model, spec_d) for _ in range(repeats)]
        base = summary([run_baseline(data, model, spec_d, args.workdir) for _ in range(repeats)])
        total = summary([r["total"] for r in runs])
        stages = {k: summary([r.get(k, 0.0) for r in runs]) for k in runs[0]}
        parts = ", ".join(f"{k} {v['median']:.2f}" for k, v in stages.items() if k != "total")
        ratio = total["median"] / base["median"]
        rows.append(row(
            f"lifecycle, {n:,} rows: upload -> serving champion", model, "total", total, "s",
            baseline="pandas read_csv + same pipeline fit + joblib.dump", baseline_stats=base,
            ratio=ratio, ratio_label="x the baseline's time", target="<= 2x",
            met=ratio <= 2.0, note=f"{MODEL_LABELS[model]}; per stage (s): {parts}",
            stages=stages))
    path = write_result("lifecycle", rows, smoke=args.smoke, out_dir=args.out,
                        extra={"dataset_rows": n, "dataset_mb": data.stat().st_size / 2**20})
    print(path)
    print(json.dumps({r["model"]: {k: round(v["median"], 3) for k, v in r["stages"].items()}
                      for r in rows}, indent=1))


if __name__ == "__main__":
    main()
