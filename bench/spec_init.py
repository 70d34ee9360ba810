"""spec init: wall time and peak RSS of `mlops-kit spec init` (the whole command, a fresh
process: imports, one streamed pass, inference, YAML) on a customers-like table of 1M rows
(12 columns: an id, a date, free text, numerics with missing values, a 40-level categorical
with rare levels, a yes/no column, a constant, a binary target) as CSV and as Parquet.

Target: 1M rows in under 10 s. Baseline: pandas read of the whole file plus the per-column
facts spec init needs (nunique, null rate, min/max), in a fresh process.

Children run with bytecode caching on (PYTHONPYCACHEPREFIX in the work dir, one warm-up run
not counted), as an installed package has its .pyc files: with PYTHONDONTWRITEBYTECODE set,
every process recompiles pandas (which pyarrow imports) and its other imports, ~5 s here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, parse_args, row, summary, write_result

CHILD = r"""
import json, runpy, sys, time
def peak_kb():
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM")).split()[1])
t0 = time.perf_counter()
sys.argv = ["mlops-kit", "spec", "init", sys.argv[1], "--target", "churn", "-o", sys.argv[2],
            "--force", "--json"]
from mlops_kit.cli.app import main
try:
    main()
except SystemExit as e:
    assert not e.code, e.code
sys.stderr.write(json.dumps({"seconds": time.perf_counter() - t0, "rss_kb": peak_kb()}) + "\n")
"""

PANDAS = r"""
import json, sys, time
def peak_kb():
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM")).split()[1])
t0 = time.perf_counter()
import pandas as pd
df = pd.read_csv(sys.argv[1]) if sys.argv[1].endswith(".csv") else pd.read_parquet(sys.argv[1])
facts = {c: (df[c].nunique(), df[c].isna().mean(),
             (df[c].min(), df[c].max()) if df[c].dtype.kind in "if" else None) for c in df}
sys.stderr.write(json.dumps({"seconds": time.perf_counter() - t0, "rss_kb": peak_kb()}) + "\n")
"""


def make_files(workdir: Path, n: int) -> dict[str, Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out = {"csv": workdir / f"customers-{n}.csv", "parquet": workdir / f"customers-{n}.parquet"}
    if all(p.exists() for p in out.values()):
        return out
    rng = np.random.default_rng(n)
    weights = 0.85 ** np.arange(40)
    plans = pa.array([f"plan_{i:02d}" for i in range(40)])
    words = np.array(["slow", "great", "support", "price", "app", "crash", "love", "bill"])
    comments = pa.array([" ".join(rng.choice(words, k)) for k in rng.integers(2, 9, 4096)])
    churned = rng.random(n) < 0.2
    days = rng.integers(0, 3650, n).astype("timedelta64[D]") + np.datetime64("2015-01-01")
    table = pa.table({
        "customer_id": pc.binary_join_element_wise("C", pc.cast(pa.array(
            rng.permutation(n) + 10_000_000), pa.string()), ""),
        "signup_date": pa.array(days.astype(str)),
        "comment": pc.take(comments, pa.array(rng.integers(0, 4096, n))),
        "age": pa.array(rng.integers(18, 90, n)),
        "income": pa.array(rng.normal(5e4, 1.5e4, n).round(2), mask=rng.random(n) < 0.1),
        "balance": pa.array(rng.gamma(2, 500, n).round(2), mask=rng.random(n) < 0.05),
        "visits": pa.array(rng.poisson(4, n)),
        "plan": pc.take(plans, pa.array(rng.choice(40, n, p=weights / weights.sum()))),
        "newsletter": pc.take(pa.array(["yes", "no"]), pa.array(rng.integers(0, 2, n))),
        "country": pc.take(pa.array(["fr", "de", "es", "it"]), pa.array(rng.integers(0, 4, n))),
        "source": pa.array(["web"] * n),
        "churn": pc.take(pa.array(["stayed", "churned"]), pa.array(churned.astype(np.int8))),
    })
    pacsv.write_csv(table, out["csv"])
    pq.write_table(table, out["parquet"], row_group_size=128 * 1024)
    return out


def child_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(workdir / "pycache"), "OMP_NUM_THREADS": "1"}


def run_child(code: str, *args: str, env: dict[str, str] | None = None) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=False, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed: {proc.stderr[-2000:]}")
    res = json.loads(proc.stderr.strip().splitlines()[-1])
    res["wall_s"] = time.perf_counter() - t0
    if code is CHILD:
        res["doc"] = json.loads(proc.stdout)
    return res


def main() -> None:
    args = parse_args(__doc__)
    n = 20_000 if args.smoke else 1_000_000
    repeats = 1 if args.smoke else 3
    files = make_files(args.workdir, n)
    rows = []
    decided = {}
    env = child_env(args.workdir)
    for fmt, path in files.items():
        out = str(args.workdir / f"spec-{fmt}.yaml")
        run_child(CHILD, str(path), out, env=env)  # warm-up: bytecode written, files cached
        kit = [run_child(CHILD, str(path), out, env=env) for _ in range(repeats)]
        doc = kit[0]["doc"]
        decided[fmt] = {"features": doc["features"], "not_features": doc["not_features"]}
        run_child(PANDAS, str(path), env=env)
        base = [run_child(PANDAS, str(path), env=env)]
        secs = summary([r["wall_s"] for r in kit])
        base_secs = summary([r["wall_s"] for r in base])
        rss = summary([r["rss_kb"] / 1024 for r in kit])
        base_rss = summary([r["rss_kb"] / 1024 for r in base])
        met = secs["median"] < 10
        size_mb = path.stat().st_size / 2**20
        rows.append(row(
            f"spec init, {fmt}, {n:,} rows", None, "wall time of the command", secs, "s",
            baseline="pandas read + per-column facts", baseline_stats=base_secs,
            ratio=base_secs["median"] / secs["median"], ratio_label="x the baseline's speed",
            target=None if args.smoke else "< 10 s (1M rows)", met=None if args.smoke else met,
            note=f"{size_mb:.0f} MB file; peak RSS {rss['median']:.0f} MB vs pandas "
                 f"{base_rss['median']:.0f} MB; {len(doc['features'])} features, "
                 f"{len(doc['not_features'])} columns left out",
            peak_rss_mb=rss, baseline_peak_rss_mb=base_rss, file_mb=size_mb))
    path = write_result("spec_init", rows, smoke=args.smoke, out_dir=args.out,
                        extra={"decisions": decided})
    print(path)


if __name__ == "__main__":
    main()
