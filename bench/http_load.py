"""HTTP load: `mlops_kit.local.server` (bearer auth, schema validation, capture on: everything
a production request goes through) against a bare reference server on the same ONNX model:
starlette + uvicorn + onnxruntime with no auth, no validation and no capture. One record per
request (the 100-tree forest), keep-alive connections on loopback, c=1 and c=4, interleaved
rounds so machine noise hits both alike.

The load comes from wrk (Debian's `wrk`: C, one event-loop thread, latency percentiles from an
HdrHistogram) when it is installed; otherwise from a thread-per-connection Python client
(recorded in the results; fine for --smoke, not for figures). Each server runs in its own
process."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import feature_records, parse_args, prepare_models, row, serve_env, summary, write_result

MODEL = "churn_rf"

KIT = r"""
import sys
from mlops_kit.bootstrap import local_backend
from mlops_kit.local.auth import rotate_token
from mlops_kit.local.server import ServerThread, build_api
from mlops_kit.settings import Settings
settings = Settings()
backend = local_backend(settings)
token = rotate_token(settings.workspace)  # a bench workspace: a fresh token each run
import os
switch = os.environ.get("BENCH_SWITCH_INTERVAL")  # exploring the knob: seconds, or "none"
kw = {} if switch is None else {"switch_interval_s": None if switch == "none" else float(switch)}
srv = ServerThread(build_api(backend, auth=True, workspace=settings.workspace), **kw).start()
print(srv.url, token, flush=True)
sys.stdin.read()
srv.stop()
"""

# What a user writes without the kit: the model, a JSON endpoint, nothing else.
REFERENCE = r"""
import json, socket, sys, threading
import numpy as np, onnxruntime as ort, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
onnx_path, numeric = sys.argv[1], set(json.loads(sys.argv[2]))
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
names = [i.name for i in sess.get_inputs()]
async def predict(request):
    recs = (await request.json())["instances"]
    feed = {n: np.array([[r[n]] for r in recs], dtype=np.float32 if n in numeric else object)
            for n in names}
    label, proba = sess.run(None, feed)
    return JSONResponse({"predictions": label.tolist(), "probabilities": proba.tolist()})
app = Starlette(routes=[Route("/v1/models/{model}:predict", predict, methods=["POST"])])
# proto IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets (else +40 ms per request)
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
sock.bind(("127.0.0.1", 0))
config = uvicorn.Config(app, log_level="warning", access_log=False)
server = uvicorn.Server(config)
threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
print("http://127.0.0.1:%d" % sock.getsockname()[1], "-", flush=True)
sys.stdin.read()
server.should_exit = True
"""


def start(code: str, env: dict[str, str], *argv: str) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = proc.stdout.readline().split()
    if len(line) != 2:
        proc.kill()
        raise RuntimeError("server did not start")
    return proc, line[0], line[1]


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, body: bytes, headers: dict[str, str], conns: int, seconds: float) -> dict:
    script = Path(tempfile.mkdtemp()) / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body.decode())}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, check=True,
                         timeout=seconds + 60).stdout
    shutil.rmtree(script.parent)
    pct = {int(m.group(1)): float(m.group(2)) * _UNITS[m.group(3)] for m in re.finditer(
        r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    return {"rps": rps, "p50": pct[50], "p99": pct[99], "errors": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(0) if errors else None, "client": "wrk"}


def python_client(url: str, body: bytes, headers: dict[str, str], conns: int,
                  seconds: float) -> dict:
    import http.client
    import threading

    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    lat: list[list[float]] = [[] for _ in range(conns)]
    errors = [0] * conns
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            lat[i].append((time.perf_counter() - t0) * 1000)
            errors[i] += resp.status != 200
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(conns)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [x for xs in lat for x in xs]
    s = summary(flat)
    return {"rps": len(flat) / (time.perf_counter() - t0), "p50": s["median"], "p99": s["p99"],
            "errors": sum(errors), "socket_errors": None, "client": "python threads"}


def main() -> None:
    args = parse_args(__doc__)
    info = prepare_models(args.workdir, smoke=args.smoke)
    seconds, rounds = (1, 1) if args.smoke else (8, 2)
    load = wrk if shutil.which("wrk") else python_client
    ws = Path(info["workspace"])
    version = info["models"][MODEL]["version"]
    onnx_path = ws / "store" / "models" / MODEL / f"{version:06d}" / "model.onnx"
    numeric = [f for f in info["models"][MODEL]["features"]
               if f not in info["models"][MODEL]["categorical"]]
    env = serve_env(ws)
    kit, kit_url, token = start(KIT, env)
    ref, ref_url, _ = start(REFERENCE, env, str(onnx_path), json.dumps(numeric))
    body = json.dumps({"instances": feature_records(1, seed=31)}).encode()
    path = f"/v1/models/{MODEL}:predict"
    servers = {"kit": (kit_url + path, {"Content-Type": "application/json",
                                        "Authorization": f"Bearer {token}"}),
               "reference": (ref_url + path, {"Content-Type": "application/json"})}
    runs: dict[tuple[str, int], list[dict]] = {}
    try:
        for url, headers in servers.values():  # warm: model loaded, first capture made
            load(url, body, headers, 1, 1)
        for _ in range(rounds):
            for conns in (1, 4):
                for name, (url, headers) in servers.items():
                    r = load(url, body, headers, conns, seconds)
                    if r["errors"] or r["socket_errors"]:
                        raise RuntimeError(f"{name} at c={conns}: {r}")
                    runs.setdefault((name, conns), []).append(r)
    finally:
        for proc in (kit, ref):
            proc.stdin.close()
            proc.wait(timeout=30)
    rows = []
    client = runs[("kit", 1)][0]["client"]
    for conns in (1, 4):
        k, b = runs[("kit", conns)], runs[("reference", conns)]
        stat = {m: (summary([r[m] for r in k]), summary([r[m] for r in b]))
                for m in ("rps", "p50", "p99")}
        note = (f"{client}, {seconds} s x {rounds} rounds, 1 record/request, {MODEL}; "
                f"kit p50/p99 {stat['p50'][0]['median']:.2f}/{stat['p99'][0]['median']:.2f} ms, "
                f"{stat['rps'][0]['median']:,.0f} req/s; reference "
                f"{stat['p50'][1]['median']:.2f}/{stat['p99'][1]['median']:.2f} ms, "
                f"{stat['rps'][1]['median']:,.0f} req/s")
        fig = f"HTTP load, c={conns}, auth + validation + capture on"
        base = "bare starlette + uvicorn + onnxruntime (no auth, validation or capture)"
        p99_ratio = stat["p99"][0]["median"] / stat["p99"][1]["median"]
        rps_ratio = stat["rps"][0]["median"] / stat["rps"][1]["median"]
        rows.append(row(fig, MODEL, "p99 latency", stat["p99"][0], "ms", baseline=base,
                        baseline_stats=stat["p99"][1], ratio=p99_ratio,
                        ratio_label="x the reference's p99", target="<= 1.5x",
                        met=p99_ratio <= 1.5, note=note, p50=stat["p50"][0],
                        baseline_p50=stat["p50"][1]))
        rows.append(row(fig, MODEL, "throughput", stat["rps"][0], "req/s", baseline=base,
                        baseline_stats=stat["rps"][1], ratio=rps_ratio,
                        ratio_label="x the reference's req/s", target=">= 1.0x",
                        met=rps_ratio >= 1.0, note=note))
    path_out = write_result("http_load", rows, smoke=args.smoke, out_dir=args.out,
                            extra={"client": client})
    print(path_out)
    for r in rows:
        print(r["figure"], r["metric"], f"{r['ratio']:.2f}", r["note"])


if __name__ == "__main__":
    main()
