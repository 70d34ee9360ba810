"""Monitoring: one drift run (core.monitoring.run_monitor: feature drift, prediction drift,
report, alert) over 1M captured rows of the demo model, in a fresh subprocess: wall time and
peak RSS. The captures are generated once, in the layout core/capture.py writes
(captures/<model>/<date>/<hour>/<stamp>-<id>.jsonl, 2,000 rows per object: the capture
buffer's default flush size), with drifted traffic so the run has drift to find.

Baseline: the floor any implementation pays, reading and json-parsing every captured line
(no statistics)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import parse_args, prepare_models, row, summary, write_result

ROWS_PER_OBJECT = 2000


def make_captures(ws: Path, model: str, version: int, n: int) -> dict:
    from mlops_kit.core.layout import capture_hour_prefix
    from mlops_kit.core.synthetic import churn_columns

    store_root = ws / "store"
    at = datetime.now(UTC) - timedelta(minutes=5)
    prefix = capture_hour_prefix(model, at)
    cols = churn_columns(n, seed=23, drift=0.6)
    names = ["tenure_months", "monthly_charges", "support_calls", "age", "plan", "region",
             "payment"]
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    stamp = at.isoformat()
    objects = 0
    for start in range(0, n, ROWS_PER_OBJECT):
        lines = []
        rid = uuid.uuid4().hex
        for i in range(start, min(n, start + ROWS_PER_OBJECT)):
            p1 = round(min(0.99, max(0.01, cols["monthly_charges"][i] / 200)), 6)
            lines.append(dumps({
                "id": f"{rid}#{i}", "request_id": rid, "at": stamp, "model": model,
                "version": version, "role": "served", "latency_ms": 0.1,
                "features": {k: cols[k][i] for k in names},
                "prediction": int(p1 > 0.5), "probabilities": [round(1 - p1, 6), p1]}))
        key = f"{prefix}{at:%Y%m%dT%H%M%S}-{objects:06d}.jsonl"
        path = store_root / key  # written directly: generating is not what we measure
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        objects += 1
    return {"objects": objects, "bytes": sum(p.stat().st_size for p in
                                             (store_root / prefix).glob("*.jsonl"))}


MONITOR = r"""
import json, resource, sys, time
def peak_kb():  # VmHWM: this process only (ru_maxrss can carry the parent's peak over fork)
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM")).split()[1])
from mlops_kit.settings import Settings
from mlops_kit.bootstrap import local_backend
from mlops_kit.core.monitoring.monitor import run_monitor
b = local_backend(Settings(workspace=sys.argv[1], backend="local"))
rss0 = peak_kb()
t0 = time.perf_counter()
report = run_monitor(b.ctx, sys.argv[2], window_hours=2)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rows": report.get("rows"), "drifted": report.get("drifted"),
                  "status": report.get("status"),
                  "rss_kb": peak_kb(),
                  "rss_before_kb": rss0}))
"""

FLOOR = r"""
import json, pathlib, resource, sys, time
def peak_kb():  # VmHWM: this process only (ru_maxrss can carry the parent's peak over fork)
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM")).split()[1])
root = pathlib.Path(sys.argv[1]) / "store" / "captures" / sys.argv[2]
t0 = time.perf_counter()
rows = 0
for p in sorted(root.rglob("*.jsonl")):
    with open(p, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                json.loads(line)
                rows += 1
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": rows,
                  "rss_kb": peak_kb()}))
"""


def child(code: str, *argv: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"monitoring child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args(__doc__)
    info = prepare_models(args.workdir, smoke=args.smoke)
    n = 20_000 if args.smoke else 1_000_000
    repeats = 1 if args.smoke else 2
    model = "churn"
    ws = args.workdir / "monitor-ws"
    if ws.exists():
        shutil.rmtree(ws)
    shutil.copytree(info["workspace"], ws, ignore=shutil.ignore_patterns("captures"))
    t0 = time.perf_counter()
    gen = make_captures(ws, model, info["models"][model]["version"], n)
    gen["seconds"] = time.perf_counter() - t0
    runs = [child(MONITOR, str(ws), model) for _ in range(repeats)]
    floors = [child(FLOOR, str(ws), model)]
    if not all(r["rows"] == n and r["status"] == "ok" for r in runs):
        raise RuntimeError(f"monitor did not read all {n} rows: {runs}")
    t = summary([r["seconds"] for r in runs])
    f = summary([r["seconds"] for r in floors])
    rss = summary([r["rss_kb"] / 1024 for r in runs])
    rss_before = summary([r["rss_before_kb"] / 1024 for r in runs])
    floor_rss = summary([r["rss_kb"] / 1024 for r in floors])
    rows = [
        row(f"monitoring, drift run over {n:,} captured rows", model, "time", t, "s",
            baseline="floor: read + json.loads every line", baseline_stats=f,
            ratio=t["median"] / f["median"], ratio_label="x the floor",
            note=f"{gen['objects']} objects, {gen['bytes'] / 2**20:.0f} MB JSONL; "
                 f"{n / t['median']:,.0f} rows/s; drifted={runs[0]['drifted']}"),
        row(f"monitoring, drift run over {n:,} captured rows", model, "peak RSS", rss, "MB",
            baseline="floor: read + json.loads every line", baseline_stats=floor_rss,
            ratio=rss["median"] / floor_rss["median"], ratio_label="x the floor's RSS",
            note=f"{rss_before['median']:.0f} MB before the run (imports, backend)"),
    ]
    path = write_result("monitoring", rows, smoke=args.smoke, out_dir=args.out,
                        extra={"captures": gen})
    print(path)


if __name__ == "__main__":
    main()
