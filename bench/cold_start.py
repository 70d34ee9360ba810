"""Cold start: a new Python process imports the serve handler, loads the model and answers its
first request (an HTTP API v2 event). Wall time from spawn to the first response, measured by
the parent, several repeats, kit and baseline interleaved. Target: < 1 s, and <= 1/3 of the
baseline (the same sklearn pipeline loaded with joblib in the same handler shape).

The child also reports where its time went (imports vs first request) and its peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import (
    MODEL_LABELS,
    MODELS,
    feature_records,
    http_event,
    parse_args,
    prepare_models,
    row,
    serve_env,
    summary,
    write_result,
)

CHILD = r"""
import time
t0 = time.perf_counter()
import json, os, sys
def peak_kb():  # VmHWM: this process only (ru_maxrss can carry the parent's peak over fork)
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM")).split()[1])
import {module} as handler_module
t1 = time.perf_counter()
event = json.loads(os.environ["BENCH_EVENT"])
resp = handler_module.handler(event, None)
t2 = time.perf_counter()
assert resp["statusCode"] == 200, resp
print(json.dumps({{"import_ms": (t1 - t0) * 1000, "first_request_ms": (t2 - t1) * 1000,
                   "rss_kb": peak_kb()}}), flush=True)
"""


def one_run(module: str, env: dict[str, str]) -> dict[str, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(module=module)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    wall = (time.perf_counter() - t0) * 1000
    _, err = proc.communicate(timeout=120)
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"cold start child ({module}) failed: {err[-2000:]}")
    return {"wall_ms": wall, **json.loads(line)}


def main() -> None:
    args = parse_args(__doc__)
    info = prepare_models(args.workdir, smoke=args.smoke)
    repeats = 1 if args.smoke else 5
    rows = []
    for model in MODELS:
        event = json.dumps(http_event(model, feature_records(1, seed=21)))
        kit_env = {**serve_env(Path(info["workspace"])), "BENCH_EVENT": event}
        base_env = {**kit_env, "BENCH_SKLEARN_MODELS": json.dumps(
            {model: info["models"][model]})}
        kit_env.pop("BENCH_SKLEARN_MODELS", None)
        one_run("serve", kit_env)  # page cache warm-up, not counted (both sides)
        one_run("sklearn_handler", base_env)
        kit, base = [], []
        for _ in range(repeats):
            kit.append(one_run("serve", kit_env))
            base.append(one_run("sklearn_handler", base_env))
        k = summary([r["wall_ms"] for r in kit])
        b = summary([r["wall_ms"] for r in base])
        share = k["median"] / b["median"]
        under_1s = k["median"] < 1000
        met = under_1s and share <= 1 / 3
        parts = {p: summary([r[p] for r in kit])["median"]
                 for p in ("import_ms", "first_request_ms")}
        rss = summary([r["rss_kb"] / 1024 for r in kit])["median"]
        base_rss = summary([r["rss_kb"] / 1024 for r in base])["median"]
        why = "" if met else (
            " MISSED: " + ("over 1 s; " if not under_1s else "")
            + (f"{share:.2f} of the baseline > 1/3; " if share > 1 / 3 else ""))
        rows.append(row(
            "cold start (spawn -> first response)", model, "wall time", k, "ms",
            baseline="sklearn + joblib handler, same event", baseline_stats=b,
            ratio=b["median"] / k["median"], ratio_label="x faster",
            target="< 1000 ms and <= 1/3 of baseline", met=met,
            note=f"{MODEL_LABELS[model]}; child: imports {parts['import_ms']:.0f} ms, first "
                 f"request (load model + answer) {parts['first_request_ms']:.0f} ms; peak RSS "
                 f"{rss:.0f} MB vs {base_rss:.0f} MB; kit = {share:.2f} of baseline.{why}",
            runs={"kit": kit, "baseline": base}))
    path = write_result("cold_start", rows, smoke=args.smoke, out_dir=args.out,
                        extra={"python_flags": os.environ.get("PYTHONFLAGS", "")})
    print(path)


if __name__ == "__main__":
    main()
