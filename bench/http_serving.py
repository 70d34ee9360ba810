"""HTTP serving: requests/s and p50/p99 latency of the local server (mlops_kit.local.server, the same
HttpApi the cloud function runs, capture on) under a concurrent keep-alive client on loopback,
against a baseline server of the same shape (ServerThread: the same granian server and
request handling) over the sklearn/joblib pipeline. One record per request.

The server runs in its own process; the client (N threads, one persistent connection each)
in this one, so each gets a core of the 2-core machine."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import (
    MODEL_LABELS,
    MODELS,
    feature_records,
    parse_args,
    prepare_models,
    row,
    serve_env,
    summary,
    write_result,
)

SERVER = r"""
import json, os, sys, threading
kind = sys.argv[1]
if kind == "kit":
    from mlops_kit.local.server import ServerThread, build_api
    from mlops_kit.settings import Settings
    from mlops_kit.bootstrap import local_backend
    backend = local_backend(Settings())
    srv = ServerThread(build_api(backend, auth=False)).start()
else:
    from mlops_kit.local.server import ServerThread
    import sklearn_handler
    srv = ServerThread(sklearn_handler._load_from_env()).start()
print(srv.url, flush=True)
sys.stdin.read()  # run until the parent closes stdin
"""


def start_server(kind: str, env: dict[str, str]) -> tuple[subprocess.Popen, str, int]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, kind], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    url = proc.stdout.readline().strip()
    if not url:
        proc.kill()
        raise RuntimeError(f"{kind} server did not start")
    host, port = url.rsplit("/", 1)[-1].split(":")
    return proc, host, int(port)


def load(host: str, port: int, path: str, body: bytes, clients: int, seconds: float) -> dict:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = time.perf_counter() + seconds
    headers = {"content-type": "application/json"}

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        lat = latencies[i]
        clock = time.perf_counter
        while clock() < stop:
            t0 = clock()
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            lat.append((clock() - t0) * 1000)
            if resp.status != 200:
                errors[i] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    flat = [x for lat in latencies for x in lat]
    return {"requests": len(flat), "rps": len(flat) / elapsed, "errors": sum(errors),
            "latency": summary(flat)}


def main() -> None:
    args = parse_args(__doc__)
    info = prepare_models(args.workdir, smoke=args.smoke)
    clients, seconds, rounds = (2, 0.5, 1) if args.smoke else (8, 3.0, 2)
    env = {**serve_env(Path(info["workspace"])),
           "BENCH_SKLEARN_MODELS": json.dumps(info["models"])}
    body = json.dumps({"instances": feature_records(1, seed=31)}).encode()
    servers = {kind: start_server(kind, env) for kind in ("kit", "sklearn")}
    rows = []
    try:
        for model in MODELS:
            path = f"/v1/models/{model}:predict"
            runs: dict[str, list[dict]] = {k: [] for k in servers}
            for _, host, port in servers.values():
                load(host, port, path, body, 2, 0.3)  # warm: model loaded, connections made
            for _ in range(rounds):  # interleaved, so noise hits both alike
                for kind, (_, host, port) in servers.items():
                    runs[kind].append(load(host, port, path, body, clients, seconds))
            for kind in runs:
                bad = sum(r["errors"] for r in runs[kind])
                if bad:
                    raise RuntimeError(f"{kind} server answered {bad} requests with errors")
            kit_rps = summary([r["rps"] for r in runs["kit"]])
            base_rps = summary([r["rps"] for r in runs["sklearn"]])
            kit_p50 = summary([r["latency"]["median"] for r in runs["kit"]])
            kit_p99 = summary([r["latency"]["p99"] for r in runs["kit"]])
            base_p50 = summary([r["latency"]["median"] for r in runs["sklearn"]])
            base_p99 = summary([r["latency"]["p99"] for r in runs["sklearn"]])
            note = (f"{MODEL_LABELS[model]}; {clients} keep-alive clients x {seconds:g} s x "
                    f"{rounds} rounds; p50/p99 kit {kit_p50['median']:.2f}/"
                    f"{kit_p99['median']:.2f} ms vs sklearn {base_p50['median']:.2f}/"
                    f"{base_p99['median']:.2f} ms")
            rows.append(row("HTTP serving, 1 record/request", model, "throughput", kit_rps,
                            "req/s", baseline="sklearn/joblib behind the same server shape",
                            baseline_stats=base_rps, ratio=kit_rps["median"] / base_rps["median"],
                            ratio_label="x the baseline's req/s", note=note,
                            latency_p50=kit_p50, latency_p99=kit_p99,
                            baseline_latency_p50=base_p50, baseline_latency_p99=base_p99))
            rows.append(row("HTTP serving, 1 record/request", model, "p99 latency", kit_p99, "ms",
                            baseline="sklearn/joblib behind the same server shape",
                            baseline_stats=base_p99,
                            ratio=base_p99["median"] / kit_p99["median"], ratio_label="x lower",
                            note=f"p50 {kit_p50['median']:.2f} ms vs {base_p50['median']:.2f} ms"))
    finally:
        for proc, _, _ in servers.values():
            proc.stdin.close()
            proc.wait(timeout=30)
    path = write_result("http_serving", rows, smoke=args.smoke, out_dir=args.out)
    print(path)


if __name__ == "__main__":
    main()
