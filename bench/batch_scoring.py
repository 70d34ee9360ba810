"""Batch scoring: a CSV of N churn records scored by core.scoring (scoring/ upload -> Parquet
parts + manifest) on the local backend, rows/s and peak RSS (the child's VmHWM), for 200k and
1M rows, each in a fresh subprocess.

Targets: memory flat with file size (1M vs 200k within 1.3x; issue 27: a 10M-row file under
500 MB). Baseline: what a user writes instead with the same ONNX model, pandas read_csv of the
whole file and one onnxruntime run (no per-row validation, no rejects, no output parts: the
predictions stay in memory)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from common import parse_args, prepare_models, row, summary, write_result

KIT = r"""
import json, sys, time
def peak_kb():
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM")).split()[1])
from mlops_kit.bootstrap import local_backend
from mlops_kit.settings import Settings
from mlops_kit.core.scoring.usecase import score_upload
b = local_backend(Settings(workspace=sys.argv[1], backend="local"))
key = "scoring/churn/" + sys.argv[3]
b.ctx.store.put_file(key, sys.argv[2])
t0 = time.perf_counter()
r = score_upload(b.ctx, "churn", key, etag=str(time.time()))
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rows": r["rows_scored"], "rss_kb": peak_kb()}))
"""

PANDAS = r"""
import json, sys, time
def peak_kb():
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM")).split()[1])
import numpy as np, onnxruntime as ort, pandas as pd
sess = ort.InferenceSession(open(sys.argv[4], "rb").read(), providers=["CPUExecutionProvider"])
t0 = time.perf_counter()
df = pd.read_csv(sys.argv[2])
feed = {}
for i in sess.get_inputs():
    col = df[i.name]
    feed[i.name] = (col.to_numpy(np.float32) if "float" in i.type
                    else col.astype(str).to_numpy(object)).reshape(-1, 1)
out = sess.run(None, feed)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rows": int(len(out[0])), "rss_kb": peak_kb()}))
"""


def make_csv(workdir: Path, n: int) -> Path:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from mlops_kit.core.synthetic import churn_columns

    path = workdir / f"score-{n}.csv"
    if not path.exists():
        cols = churn_columns(n, seed=n)
        cols.pop("churned", None)
        pacsv.write_csv(pa.table(cols), path)
    return path


def run(script: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True,
                         text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args(__doc__ or "")
    models = prepare_models(args.workdir, args.smoke)
    ws = models["workspace"]
    version = models["models"]["churn"]["version"]
    onnx = Path(ws) / "store" / "artifacts" / "models" / "churn" / f"{version:06d}" / "model.onnx"
    if not onnx.exists():  # the local store's layout: find the artifact wherever it lives
        onnx = next(Path(ws).rglob(f"models/churn/{version:06d}/model.onnx"))
    sizes = [2_000, 10_000] if args.smoke else [200_000, 1_000_000]
    rows, peaks = [], {}
    for n in sizes:
        path = make_csv(args.workdir, n)
        kit = run(KIT, ws, path, f"bench-{n}.csv")
        base = run(PANDAS, ws, path, "-", onnx)
        peaks[n] = kit["rss_kb"]
        rate = kit["rows"] / kit["seconds"]
        base_rate = base["rows"] / base["seconds"]
        rows.append(row(f"batch scoring, {n:,} rows CSV", "churn", "rows/s",
                        summary([rate]), "rows/s", baseline="pandas read_csv + one ORT run",
                        baseline_stats=summary([base_rate]), ratio=rate / base_rate,
                        ratio_label="kit / baseline (throughput)",
                        note=f"validated per row, Parquet parts written; kit "
                             f"{kit['seconds']:.1f} s, baseline {base['seconds']:.1f} s"))
        rows.append(row(f"batch scoring peak RSS, {n:,} rows", "churn", "peak RSS",
                        summary([kit["rss_kb"] / 1024]), "MB",
                        baseline="pandas read_csv + one ORT run",
                        baseline_stats=summary([base["rss_kb"] / 1024]),
                        ratio=kit["rss_kb"] / base["rss_kb"],
                        ratio_label="kit / baseline (memory)"))
    small, large = sizes
    growth = peaks[large] / peaks[small]
    rows.append(row("batch scoring memory growth", "churn", f"peak RSS {large:,} / {small:,}",
                    summary([growth]), "x", target="<= 1.3x", met=growth <= 1.3))
    print(json.dumps(rows, indent=2))
    write_result("batch_scoring", rows, smoke=args.smoke, out_dir=args.out)


if __name__ == "__main__":
    main()
