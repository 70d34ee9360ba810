"""Monitoring: one drift run (core.monitoring.run_monitor: feature drift, prediction drift,
live quality from late labels, report, alert) over 1M captured rows of the demo model, in a
fresh subprocess: wall time and peak RSS. The captures are generated once, in the layout and
format core/capture/buffer.py writes (captures/<model>/<date>/<hour>/<stamp>-<id>.cap, 2,000
rows per object, the capture buffer's default flush size; 1-record requests, so 1M request
ids: the worst case for the label join), with drifted traffic so the run has drift to find,
and late labels for every 10th row.

Baseline: the same run over the same rows written as JSON lines (the capture format before;
still read)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from common import parse_args, prepare_models, row, summary, write_result

ROWS_PER_OBJECT = 2000
NUMERIC = ["tenure_months", "monthly_charges", "support_calls", "age"]
CATEGORICAL = ["plan", "region", "payment"]


def make_captures(ws: Path, model: str, version: int, n: int, *, legacy: bool) -> dict:
    """n captured rows in objects of ROWS_PER_OBJECT (columnar, or JSON lines if legacy), plus
    labels for every 10th row, put through the workspace's object store (as the serve side
    would)."""
    from mlops_kit.bootstrap import local_backend
    from mlops_kit.core.capture import codec
    from mlops_kit.core.capture.codec import encode_categorical
    from mlops_kit.core.layout import capture_hour_prefix
    from mlops_kit.core.synthetic import churn_columns
    from mlops_kit.settings import Settings

    store = local_backend(Settings(workspace=ws, backend="local")).ctx.store
    at = datetime.now(UTC) - timedelta(minutes=5)
    at_us = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    prefix = capture_hour_prefix(model, at)
    cols = churn_columns(n, seed=23, drift=0.6)
    p1 = np.clip(np.asarray(cols["monthly_charges"]) / 200, 0.01, 0.99).round(6)
    ids = [f"{i:032x}" for i in range(n)]
    objects = 0
    for start in range(0, n, ROWS_PER_OBJECT):
        sl = slice(start, min(n, start + ROWS_PER_OBJECT))
        k = sl.stop - sl.start
        if legacy:
            lines = [json.dumps({
                "id": ids[i], "request_id": ids[i], "at": at.isoformat(), "model": model,
                "version": version, "role": "served", "latency_ms": 0.1,
                "features": {c: cols[c][i] for c in NUMERIC + CATEGORICAL},
                "prediction": int(p1[i] > 0.5), "probabilities": [round(1 - p1[i], 6), p1[i]]},
                separators=(",", ":")) for i in range(sl.start, sl.stop)]
            body = ("\n".join(lines) + "\n").encode()
            suffix = codec.LEGACY_SUFFIX
        else:
            arrays = {"req.id": np.array([x.encode() for x in ids[sl]], dtype=bytes),
                      "req.rows": np.ones(k, np.int32),
                      "req.at_us": np.full(k, at_us, np.int64),
                      "req.version": np.full(k, version, np.int32),
                      "req.shadow": np.zeros(k, bool),
                      "req.latency_ms": np.full(k, 0.1, np.float32)}
            vocab, features = {}, []
            for c in NUMERIC:
                arrays[f"f.{c}"] = np.array([np.nan if v is None else v for v in cols[c][sl]],
                                            np.float32)
                features.append([c, "numeric"])
            for c in CATEGORICAL:
                cat = encode_categorical(np.array(cols[c][sl], dtype=object))
                arrays[f"c.{c}"], vocab[c] = cat.codes, cat.values.tolist()
                features.append([c, "categorical"])
            arrays["prediction"] = (p1[sl] > 0.5).astype(np.int64)
            arrays["probabilities"] = np.stack([1 - p1[sl], p1[sl]], axis=1).astype(np.float32)
            body = codec.pack({"format": codec.FORMAT, "model": model,
                                        "features": features, "prediction": "number",
                                        "vocab": vocab}, arrays)
            suffix = codec.SUFFIX
        store.put(f"{prefix}{at:%Y%m%dT%H%M%S}-{objects:06d}{suffix}", body)
        objects += 1
    store.put(f"labels/{model}/late.csv", ("request_id,churned\n" + "".join(
        f"{ids[i]},{cols['churned'][i]}\n" for i in range(0, n, 10))).encode())
    return {"objects": objects, "labels": len(range(0, n, 10)),
            "bytes": sum(i.size for i in store.list(prefix))}


MONITOR = r"""
import json, resource, sys, time
def peak_kb():  # VmHWM: this process only (ru_maxrss can carry the parent's peak over fork)
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM")).split()[1])
from mlops_kit.settings import Settings
from mlops_kit.bootstrap import local_backend
from mlops_kit.core.monitoring.usecase import run_monitor
b = local_backend(Settings(workspace=sys.argv[1], backend="local"))
rss0 = peak_kb()
t0, c0 = time.perf_counter(), time.process_time()
report = run_monitor(b.ctx, sys.argv[2], window_hours=2)
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "rows": report.get("rows"),
                  "drifted": report.get("drifted"),
                  "status": report.get("status"),
                  "labelled": (report["quality"].get("champion") or {}).get("labelled"),
                  "rss_kb": peak_kb(),
                  "rss_before_kb": rss0}))
"""

def child(code: str, *argv: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"monitoring child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def workspace(info: dict, args, name: str) -> Path:
    ws = args.workdir / name
    if ws.exists():
        shutil.rmtree(ws)
    shutil.copytree(info["workspace"], ws, ignore=shutil.ignore_patterns("captures"))
    return ws


def main() -> None:
    args = parse_args(__doc__)
    info = prepare_models(args.workdir, smoke=args.smoke)
    n = 20_000 if args.smoke else 1_000_000
    repeats = 1 if args.smoke else 2
    model = "churn"
    version = info["models"][model]["version"]
    ws, legacy_ws = workspace(info, args, "monitor-ws"), workspace(info, args, "monitor-legacy")
    t0 = time.perf_counter()
    gen = make_captures(ws, model, version, n, legacy=False)
    legacy = make_captures(legacy_ws, model, version, n, legacy=True)
    gen["seconds"] = time.perf_counter() - t0
    runs, base = [], []
    for _ in range(repeats):  # interleaved, so noise hits both alike
        runs.append(child(MONITOR, str(ws), model))
        base.append(child(MONITOR, str(legacy_ws), model))
    for r in runs + base:
        if r["rows"] != n or r["status"] != "ok" or r["labelled"] != n // 10:
            raise RuntimeError(f"monitor did not read all {n} rows and labels: {r}")
    t = summary([r["seconds"] for r in runs])
    b = summary([r["seconds"] for r in base])
    cpu = summary([r["cpu_seconds"] for r in runs])
    base_cpu = summary([r["cpu_seconds"] for r in base])
    rss = summary([r["rss_kb"] / 1024 for r in runs])
    rss_before = summary([r["rss_before_kb"] / 1024 for r in runs])
    base_rss = summary([r["rss_kb"] / 1024 for r in base])
    figure = f"monitoring, drift + live quality over {n:,} captured rows"
    rows = [
        row(figure, model, "time", t, "s",
            baseline="the same rows as JSON lines (the format before)", baseline_stats=b,
            ratio=b["median"] / t["median"], ratio_label="x faster",
            target="<= 2 s", met=t["median"] <= 2.0,
            note=f"{gen['objects']} objects, {gen['bytes'] / 2**20:.0f} MB columnar vs "
                 f"{legacy['bytes'] / 2**20:.0f} MB JSONL; {n / t['median']:,.0f} rows/s; "
                 f"{gen['labels']:,} late labels joined; drifted={runs[0]['drifted']}; CPU "
                 f"{cpu['median']:.2f} s vs {base_cpu['median']:.2f} s",
            cpu_stats=cpu, baseline_cpu_stats=base_cpu),
        row(figure, model, "peak RSS", rss, "MB",
            baseline="the same rows as JSON lines (the format before)", baseline_stats=base_rss,
            ratio=rss["median"] / base_rss["median"], ratio_label="x the baseline's RSS",
            target="bounded (one object at a time)",
            met=rss["median"] - rss_before["median"] < 150,
            note=f"{rss_before['median']:.0f} MB before the run (imports, backend); the run "
                 f"adds {rss['median'] - rss_before['median']:.0f} MB"),
    ]
    path = write_result("monitoring", rows, smoke=args.smoke, out_dir=args.out,
                        extra={"captures": gen, "legacy": legacy})
    print(path)
    for r in rows:
        print(r["metric"], round(r["stats"]["median"], 3), r["note"])


if __name__ == "__main__":
    main()
