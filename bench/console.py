"""Console: time to a full page from the local server (`mlops-kit serve`, a signed-in browser
session: cookie), on a registry of 100 models x 50 versions with 24 monitoring runs and 10
alias moves per model and a model card per version (smoke: 5 x 5). Target: each page < 200 ms.

The registry is written through the real Registry (SQLite table) and object store, without
training 5,000 models: the console only reads what the lifecycle writes. The server runs in
its own process; one keep-alive client requests each page in turn.

Baseline: the same page's reads alone (console.data in this process, no rendering, no HTTP),
so the ratio is what rendering and HTTP add on top of the registry reads."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from common import parse_args, row, serve_env, summary, time_calls, write_result

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "age", "plan", "region",
            "payment"]
TARGET_MS = 200.0

SERVER = r"""
import sys
from mlops_kit.bootstrap import local_backend
from mlops_kit.local.server import ServerThread, build_api
from mlops_kit.settings import Settings
b = local_backend(Settings(capture=False))
srv = ServerThread(build_api(b, auth=True, workspace=b.settings.workspace)).start()
print(srv.url, flush=True)
sys.stdin.read()
"""


def populate(ws: Path, models: int, versions: int, runs: int, moves: int) -> None:
    from mlops_kit.bootstrap import local_backend
    from mlops_kit.clock import FixedClock
    from mlops_kit.core import layout
    from mlops_kit.settings import Settings

    clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    b = local_backend(Settings(workspace=ws, backend="local"), clock=clock)
    reg, store = b.ctx.registry, b.ctx.store
    for m in range(models):
        name = f"model-{m:03d}"
        for v in range(1, versions + 1):
            clock.advance(minutes=5)
            lineage = {"dataset_key": f"datasets/{name}/upload-{v:03d}.csv", "rows": 4000 + v,
                       "dataset_sha256": f"{v:064x}", "spec_hash": "ab" * 32,
                       "estimator": "gradient_boosting", "trigger": "upload"}
            res = reg.reserve_version(name, f"run-{v}", lineage)
            auc = 0.80 + 0.1 * ((v * 7919 + m) % 97) / 97
            record = {"status": "registered", "reasons": [], "sha256": f"{v:064x}",
                      "artifact_key": layout.artifact_key(name, v),
                      "metrics": {"roc_auc": auc, "accuracy": auc - 0.05, "f1": auc - 0.1,
                                  "log_loss": 1 - auc},
                      "parity": {"passed": True, "max_abs_diff": 1e-6},
                      "params": {"n_estimators": 60}, "classes": [0, 1], "task": "binary",
                      "gates": {"metric": "roc_auc", "value": auc}, "lineage": lineage}
            store.put(layout.artifact_key(name, v, "card.json"),
                      json.dumps({"model": name, "version": v, "description": "bench",
                                  **record}).encode())
            reg.complete_version(name, res.version, record)
        for k in range(moves):
            reg.promote(name, versions - moves + k + 1, actor="bench", reason="bench")
        reg.set_alias(name, "challenger", versions - 1, actor="bench", reason="canary",
                      extra={"mode": "canary", "weight": 0.1})
        at = clock.now()
        for r in range(runs):
            stamp = (at + timedelta(hours=r)).isoformat()
            reg.record_monitoring(name, {
                "at": stamp, "version": versions, "status": "ok", "drifted": r % 5 == 0,
                "rows": 1000, "summary": "bench", "threshold": 0.2,
                "report_key": None, "html_key": None,
                "features": {f: {"psi": 0.05 + 0.01 * ((r + i) % 9), "method": "psi",
                                 "statistic": 0.1, "drifted": False}
                             for i, f in enumerate(FEATURES)},
                "prediction_psi": 0.03, "prediction_drifted": False,
                "quality": {"metric": "accuracy", "minimum": 0.7, "value": 0.8, "labelled": 300,
                            "alert": False}, "alerts": []})


def main() -> None:
    args = parse_args(__doc__)
    models, versions, runs, moves, n = (5, 5, 4, 2, 3) if args.smoke else (100, 50, 24, 10, 40)
    ws = args.workdir / f"console-{models}x{versions}"
    if not (ws / "registry.db").exists():
        t0 = time.perf_counter()
        populate(ws, models, versions, runs, moves)
        print(f"registry of {models} x {versions} written in {time.perf_counter() - t0:.1f} s")
    from mlops_kit.bootstrap import local_backend
    from mlops_kit.console.data import ConsoleData
    from mlops_kit.local.auth import rotate_token
    from mlops_kit.settings import Settings

    token = rotate_token(ws)
    mid = f"model-{models // 2:03d}"
    pages = {"models list": ("/ui/", lambda d: d.overview()),
             "model page": (f"/ui/models/{mid}", lambda d: d.model(mid)),
             "version page": (f"/ui/models/{mid}/versions/{versions // 2}",
                              lambda d: d.version(mid, versions // 2))}
    data = ConsoleData(*(lambda b: (b.ctx.store, b.ctx.registry))(
        local_backend(Settings(workspace=ws, backend="local"))))
    proc = subprocess.Popen([sys.executable, "-c", SERVER], env=serve_env(ws), text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    rows = []
    try:
        host, port = proc.stdout.readline().strip().rsplit("/", 1)[-1].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("POST", "/ui/login", body=urlencode({"token": token}),
                     headers={"content-type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        resp.read()
        cookie = resp.getheader("set-cookie", "").split(";")[0]
        if resp.status != 303 or not cookie:
            raise RuntimeError(f"sign-in failed: {resp.status}")
        sizes = {}

        def fetch(path: str) -> None:
            conn.request("GET", path, headers={"cookie": cookie})
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError(f"{path}: {r.status}")
            sizes[path] = len(body)

        for label, (path, reads) in pages.items():
            page_ms = time_calls(lambda p=path: fetch(p), n, warmup=3)
            base_ms = time_calls(lambda f=reads: f(data), n, warmup=3)
            s, bs = summary(page_ms), summary(base_ms)
            rows.append(row(f"console: {label}", f"{models} models x {versions} versions",
                            "time to full page", s, "ms", baseline="the page's registry reads "
                            "alone (in-process)", baseline_stats=bs,
                            ratio=s["median"] / bs["median"] if bs["median"] else None,
                            ratio_label="x the reads alone", target=f"< {TARGET_MS:g} ms",
                            met=s["p99"] < TARGET_MS,
                            note=f"GET {path.replace(mid, 'M')} over HTTP, signed-in cookie; "
                                 f"{sizes[path] / 1024:.0f} KiB of HTML; p99 {s['p99']:.1f} ms "
                                 f"(the target is judged on p99); load average "
                                 f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"))
        conn.close()
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    print(write_result("console", rows, smoke=args.smoke, out_dir=args.out))


if __name__ == "__main__":
    main()
