"""Validation: rows/s and peak RSS of core.validation.validate_dataset (streaming, pyarrow) on
CSV and Parquet files of 1M and 5M rows (10 numeric + 3 categorical feature columns and a
binary target), each in a fresh subprocess (peak RSS = the child's VmHWM).

Targets: >= 500k rows/s, and peak memory that does not grow with the file size (5M vs 1M).
Baseline: what a user writes instead, pandas read_csv / read_parquet of the whole file and the
same checks vectorised (ranges, categories, nulls, class balance)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from common import parse_args, row, summary, write_result

N_NUMERIC, CATEGORIES = 10, {"c0": ["a", "b", "c", "d"], "c1": ["x", "y", "z"],
                             "c2": [f"k{i}" for i in range(12)]}


def bench_spec() -> dict:
    features = [{"name": f"n{i}", "type": "numeric", "min": -1000, "max": 1000,
                 "nullable": True} for i in range(N_NUMERIC)]
    features += [{"name": c, "type": "categorical", "categories": cats}
                 for c, cats in CATEGORIES.items()]
    return {"name": "wide", "task": "binary_classification", "target": "label",
            "features": features, "estimator": {"kind": "logistic_regression"},
            "validation": {"min_rows": 100, "max_null_fraction": 0.2}}


def make_files(workdir: Path, sizes: list[int]) -> dict[tuple[str, int], Path]:
    """Generated once per work dir with numpy + pyarrow (a few seconds for 5M rows)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out: dict[tuple[str, int], Path] = {}
    for n in sizes:
        csv_path, pq_path = workdir / f"wide-{n}.csv", workdir / f"wide-{n}.parquet"
        out[("csv", n)], out[("parquet", n)] = csv_path, pq_path
        if csv_path.exists() and pq_path.exists():
            continue
        rng = np.random.default_rng(n)
        cols: dict[str, pa.Array] = {}
        for i in range(N_NUMERIC):
            values = rng.normal(0, 100, n).round(3)
            mask = rng.random(n) < 0.02
            cols[f"n{i}"] = pa.array(values, mask=mask)
        for c, cats in CATEGORIES.items():
            idx = pa.array(rng.integers(0, len(cats), n).astype(np.int32))
            cols[c] = pa.DictionaryArray.from_arrays(idx, pa.array(cats)).cast(pa.string())
        cols["label"] = pa.array((rng.random(n) < 0.3).astype(np.int64))
        table = pa.table(cols)
        pacsv.write_csv(table, csv_path)
        pq.write_table(table, pq_path, row_group_size=256 * 1024)
    return out


KIT = r"""
import json, resource, sys, time
def peak_kb():  # VmHWM: this process only (ru_maxrss can carry the parent's peak over fork)
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM")).split()[1])
from mlops_kit.core.spec import parse_spec
from mlops_kit.core.validation.validator import validate_dataset
spec = parse_spec(json.loads(sys.argv[3]))
rss0 = peak_kb()
t0 = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    result = validate_dataset(f, sys.argv[2], spec)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rows": result.rows, "passed": result.passed,
                  "rss_kb": peak_kb(),
                  "rss_after_imports_kb": rss0}))
"""

PANDAS = r"""
import json, resource, sys, time
def peak_kb():  # VmHWM: this process only (ru_maxrss can carry the parent's peak over fork)
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM")).split()[1])
import pandas as pd
spec = json.loads(sys.argv[3])
rss0 = peak_kb()
t0 = time.perf_counter()
df = pd.read_csv(sys.argv[1]) if sys.argv[2] == "csv" else pd.read_parquet(sys.argv[1])
problems = 0
for f in spec["features"]:
    col = df[f["name"]]
    if col.isna().mean() > spec["validation"]["max_null_fraction"]:
        problems += 1
    if f["type"] == "numeric":
        problems += int(((col < f["min"]) | (col > f["max"])).sum())
    else:
        problems += int((~col.isin(f["categories"]) & col.notna()).sum())
share = df[spec["target"]].value_counts(normalize=True).min()
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rows": len(df), "passed": bool(problems == 0 and share > 0.01),
                  "rss_kb": peak_kb(),
                  "rss_after_imports_kb": rss0}))
"""


def run_child(code: str, path: Path, fmt: str, spec: dict) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(path), fmt, json.dumps(spec)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"validation child failed: {out.stderr[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall_s"] = time.perf_counter() - t0
    return res


def main() -> None:
    args = parse_args(__doc__)
    sizes = [20_000, 100_000] if args.smoke else [1_000_000, 5_000_000]
    repeats = {sizes[0]: 1 if args.smoke else 3, sizes[1]: 1 if args.smoke else 2}
    t0 = time.perf_counter()
    files = make_files(args.workdir, sizes)
    gen_s = time.perf_counter() - t0
    spec = bench_spec()
    rows = []
    peaks: dict[tuple[str, str], dict[int, float]] = {}
    for fmt in ("csv", "parquet"):
        for n in sizes:
            path = files[(fmt, n)]
            kit = [run_child(KIT, path, fmt, spec) for _ in range(repeats[n])]
            base = [run_child(PANDAS, path, fmt, spec)]
            if not all(r["passed"] and r["rows"] == n for r in kit):
                raise RuntimeError(f"validation of {path.name} did not pass: {kit}")
            rate = summary([n / r["seconds"] for r in kit])
            base_rate = summary([n / r["seconds"] for r in base])
            rss = summary([r["rss_kb"] / 1024 for r in kit])
            base_rss = summary([r["rss_kb"] / 1024 for r in base])
            peaks.setdefault(("kit", fmt), {})[n] = rss["median"]
            peaks.setdefault(("pandas", fmt), {})[n] = base_rss["median"]
            size_mb = path.stat().st_size / 2**20
            met = rate["median"] >= 500_000
            rows.append(row(
                f"validation, {fmt}, {n:,} rows", None, "rows/s", rate, "rows/s",
                baseline="pandas read + vectorised checks", baseline_stats=base_rate,
                ratio=rate["median"] / base_rate["median"], ratio_label="x the baseline's rows/s",
                target=">= 500,000 rows/s", met=met,
                note=f"{size_mb:.0f} MB file; peak RSS {rss['median']:.0f} MB vs pandas "
                     f"{base_rss['median']:.0f} MB"
                     + ("" if met else f"; MISSED by {500_000 / rate['median']:.2f}x"),
                peak_rss_mb=rss, baseline_peak_rss_mb=base_rss, file_mb=size_mb))
    small, big = sizes
    for fmt in ("csv", "parquet"):
        k, p = peaks[("kit", fmt)], peaks[("pandas", fmt)]
        growth = k[big] / k[small]
        met = growth <= 1.25
        rows.append(row(
            f"validation, {fmt}, peak memory {big // small}x rows", None,
            f"peak RSS at {big:,} / at {small:,} rows",
            summary([growth]), "x", baseline="pandas read + vectorised checks",
            baseline_stats=summary([p[big] / p[small]]),
            ratio=(p[big] / p[small]) / growth, ratio_label="x less growth",
            target="flat (<= 1.25x)", met=met,
            note=f"kit {k[small]:.0f} -> {k[big]:.0f} MB; pandas {p[small]:.0f} -> "
                 f"{p[big]:.0f} MB" + ("" if met else f"; MISSED: grows {growth:.2f}x")))
    path = write_result("validation", rows, smoke=args.smoke, out_dir=args.out,
                        extra={"generate_seconds": gen_s, "spec": spec})
    print(path)


if __name__ == "__main__":
    main()
