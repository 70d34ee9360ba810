"""HTTP load: the kit's server (bearer auth, schema validation, capture on: everything a
production request goes through) against bare reference servers on the same ONNX model, one
record per request (the 100-tree forest), keep-alive connections on loopback, interleaved
rounds so machine noise hits every server alike. Each server runs in its own process.

Servers (issue 24 chose granian by this measurement):
- kit: `mlops-kit serve` (granian, RSGI, 1 worker), c=1 and c=4;
- kit-pinned: the same with `--pin-cpus` (the worker's threads on one CPU: granian's I/O
  thread and the Python loop hand each request over without waking another CPU);
- kit-uvicorn: the same application (local.http_app.ServeApp, over ASGI) on uvicorn[standard]
  (uvloop + httptools), c=1 and c=4: the other candidate server;
- reference: starlette on uvicorn[standard], no auth/validation/capture;
- granian-bare: the model behind granian RSGI with no kit work, run as the kit is run (granian's
  process manager, one worker, its default loop: uvloop, in the base lock);
- kit-nocapture: the kit with MLOPSKIT_CAPTURE=false, c=1 and c=4 (what capture costs);
- kit --workers 2 at c=16 (one worker per CPU: pinned by default) against kit (1 worker);
- server CPU per request: the CPU time (user + system, every thread) of each server's process
  tree during a load run divided by the requests it answered. Throughput at c=1 on this shared
  2-vCPU VM swings 2-4x with other processes' load (a hand-over to an idle vCPU waits for it to
  wake); CPU per request says what the server spent rather than how long it waited, though it
  moves too (granian's threads spin a little before they sleep: on a quiet machine a request
  costs up to twice the CPU it costs on a busy one);
- cache cost: the kit's application and the bare one called in this process, one request at a
  time, with warm caches and with the caches evicted before each request (4 MB: this CPU's
  L2; 48 MB: most of what a vCPU finds after the host ran something else on its core). granian
  hands each request between its Rust threads and the Python loop three to four times, and on
  an idle VM each hand-over may halt the vCPU: the kit's work is paid at the cold price;
- fairness: a 1-record client's p99 on the kit (1 worker; unpinned and pinned) while three
  clients loop on 10,000-row batches, against its p99 alone (Python client; the batches go to
  the pool).

The load comes from wrk (Debian's `wrk`: C, one event-loop thread, latency percentiles from an
HdrHistogram) when it is installed; otherwise from a thread-per-connection Python client
(recorded in the results; fine for --smoke, not for figures)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import feature_records, parse_args, prepare_models, row, serve_env, summary, write_result

MODEL = "churn_rf"

# The kit as deployed: `mlops-kit serve` (a fresh token each run: a bench workspace).
KIT = r"""
import json, subprocess, sys
token = sys.argv[2]
proc = subprocess.Popen([sys.executable, "-m", "mlops_kit", "serve", "--port", "0", "--json",
                         "--workers", sys.argv[1], *sys.argv[3:]], stdout=subprocess.PIPE,
                        text=True)
info = json.loads(proc.stdout.readline())
print(info["url"], token, flush=True)
sys.stdin.read()
proc.terminate(); proc.wait(60)
"""

# The same application on uvicorn[standard] (uvloop + httptools).
KIT_UVICORN = r"""
import socket, sys, threading
import uvicorn
from mlops_kit.bootstrap import local_backend
from mlops_kit.local.http_app import ServeApp
from mlops_kit.local.server import build_api
from mlops_kit.settings import Settings
settings = Settings()
token = sys.argv[1]
app = ServeApp(build_api(local_backend(settings), auth=True, workspace=settings.workspace))
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
sock.bind(("127.0.0.1", 0))
server = uvicorn.Server(uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="on",
                                       log_level="warning", access_log=False))
threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
import time; time.sleep(1.0)
print("http://127.0.0.1:%d" % sock.getsockname()[1], token, flush=True)
sys.stdin.read()
server.should_exit = True
"""

_MODEL_CODE = r"""
import json, sys
import numpy as np, onnxruntime as ort
onnx_path, numeric = sys.argv[1], set(json.loads(sys.argv[2]))
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
names = [i.name for i in sess.get_inputs()]
def score(raw):
    recs = json.loads(raw)["instances"]
    feed = {n: np.array([[r[n]] for r in recs], dtype=np.float32 if n in numeric else object)
            for n in names}
    label, proba = sess.run(None, feed)
    return {"predictions": label.tolist(), "probabilities": proba.tolist()}
"""

# What a user writes without the kit: the model, a JSON endpoint, nothing else.
REFERENCE = _MODEL_CODE + r"""
import socket, threading, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
async def predict(request):
    return JSONResponse(score(await request.body()))
app = Starlette(routes=[Route("/v1/models/{model}:predict", predict, methods=["POST"])])
# proto IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets (else +40 ms per request)
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
sock.bind(("127.0.0.1", 0))
config = uvicorn.Config(app, loop="uvloop", http="httptools", log_level="warning",
                        access_log=False)
server = uvicorn.Server(config)
threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
print("http://127.0.0.1:%d" % sock.getsockname()[1], "-", flush=True)
sys.stdin.read()
server.should_exit = True
"""

# The same model behind granian with no kit work, run as `mlops-kit serve` runs the kit:
# granian's process manager, one worker, RSGI, its default loop (uvloop when installed, as it
# is in the base lock). The app is a module file (the process manager imports its target).
GRANIAN_BARE_APP = _MODEL_CODE.replace("sys.argv[1], set(json.loads(sys.argv[2]))",
                                       'os.environ["BENCH_ONNX"], set(json.loads('
                                       'os.environ["BENCH_NUMERIC"]))').replace(
    "import json, sys", "import json, os, sys") + r"""
async def app(scope, proto):
    body = await proto()
    proto.response_bytes(200, [("content-type", "application/json")], json.dumps(score(body)).encode())
"""
GRANIAN_BARE = r"""
import os, socket, sys
sys.path.insert(0, sys.argv[1])
from granian.constants import HTTPModes, Interfaces
from granian.log import LogLevels
from granian.server import Server
os.environ["BENCH_ONNX"], os.environ["BENCH_NUMERIC"] = sys.argv[2], sys.argv[3]
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
print("http://127.0.0.1:%d" % port, "-", flush=True)
Server("granian_bare_app:app", address="127.0.0.1", port=port, interface=Interfaces.RSGI,
       http=HTTPModes.http1, websockets=False, log_level=LogLevels.error).serve()
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
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a process and its descendants so far
    (Linux /proc; 0.0 elsewhere): a load run's difference is the server's CPU for it."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += tree_cpu_s(int(child))
    except (OSError, ValueError, IndexError):
        pass
    return total


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


FIGURES = [  # (figure, server, baseline, conns, metric, target ratio, higher is better)
    ("kit vs uvicorn[standard] reference", "kit", "reference", 1, "rps", 1.1, True),
    ("kit vs uvicorn[standard] reference", "kit", "reference", 4, "rps", 1.5, True),
    ("kit vs uvicorn[standard] reference", "kit", "reference", 1, "p99", 1.3, False),
    ("kit vs uvicorn[standard] reference", "kit", "reference", 4, "p99", 1.3, False),
    ("kit --pin-cpus vs uvicorn[standard] reference", "kit-pinned", "reference", 1, "rps", 1.1,
     True),
    ("kit --pin-cpus vs uvicorn[standard] reference", "kit-pinned", "reference", 4, "rps", 1.5,
     True),
    ("kit --pin-cpus vs uvicorn[standard] reference", "kit-pinned", "reference", 1, "p99", 1.3,
     False),
    ("kit --pin-cpus vs uvicorn[standard] reference", "kit-pinned", "reference", 4, "p99", 1.3,
     False),
    ("kit vs bare granian", "kit", "granian-bare", 1, "rps", 0.8, True),
    ("kit vs bare granian", "kit", "granian-bare", 4, "rps", 0.8, True),
    ("server choice: kit on granian vs kit on uvicorn[standard]", "kit", "kit-uvicorn", 1, "rps",
     None, True),
    ("server choice: kit on granian vs kit on uvicorn[standard]", "kit", "kit-uvicorn", 4, "rps",
     None, True),
    ("server choice: kit on granian vs kit on uvicorn[standard]", "kit", "kit-uvicorn", 4, "p99",
     None, False),
    ("--workers 2 vs 1 worker", "kit-2w", "kit", 16, "rps", 1.6, True),
    # what capture costs a served client (the flush runs on the worker's flusher thread)
    ("capture on vs capture off", "kit", "kit-nocapture", 1, "p99", None, False),
    ("capture on vs capture off", "kit", "kit-nocapture", 4, "p99", None, False),
    ("capture on vs capture off", "kit", "kit-nocapture", 4, "rps", None, True),
    # what the kit's work costs the server per request (CPU, every thread): steadier than
    # throughput on a shared machine
    ("server CPU per request: kit vs bare granian", "kit", "granian-bare", 1, "cpu_us", None,
     False),
    ("server CPU per request: kit vs bare granian", "kit", "granian-bare", 4, "cpu_us", None,
     False),
    ("server CPU per request: kit without capture vs bare granian", "kit-nocapture",
     "granian-bare", 1, "cpu_us", None, False),
    ("server CPU per request: kit on uvicorn[standard] vs the reference", "kit-uvicorn",
     "reference", 1, "cpu_us", None, False),
]
_LABEL = {"rps": ("throughput", "req/s"), "p99": ("p99 latency", "ms"),
          "cpu_us": ("server CPU per request", "µs")}


def fairness(url: str, headers: dict[str, str], seconds: float) -> tuple[dict, dict, int]:
    """(1-record latency alone, the same under three 10,000-row batch clients, batches done)."""
    import threading

    small = json.dumps({"instances": feature_records(1, seed=7)}).encode()
    big = json.dumps({"instances": feature_records(10_000, seed=8)}).encode()
    alone = python_client(url, small, headers, 1, seconds)
    stop = threading.Event()
    done = [0]

    def batch_client() -> None:
        import http.client

        host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
        path = "/" + url.split("//", 1)[1].split("/", 1)[1]
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        while not stop.is_set():
            conn.request("POST", path, body=big, headers=headers)
            resp = conn.getresponse()
            resp.read()
            done[0] += resp.status == 200

    threads = [threading.Thread(target=batch_client, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    loaded = python_client(url, small, headers, 1, seconds)
    stop.set()
    for t in threads:
        t.join(120)
    return alone, loaded, done[0]


EVICT_MB = (0, 4, 48)


def cache_cost(ws: Path, onnx_path: Path, numeric: list[str], token: str, n: int,
               repeats: int) -> dict[int, dict[str, list[float]]]:
    """µs per request of the kit's ServeApp and of the bare granian app, called directly
    (no server), with EVICT_MB of memory streamed through the caches before each request."""
    import asyncio
    import os

    import numpy as np

    from mlops_kit.bootstrap import local_backend
    from mlops_kit.local.http_app import ServeApp
    from mlops_kit.local.server import build_api
    from mlops_kit.settings import Settings

    os.environ["BENCH_ONNX"], os.environ["BENCH_NUMERIC"] = str(onnx_path), json.dumps(numeric)
    bare: dict = {}
    exec(compile(GRANIAN_BARE_APP, "granian_bare_app", "exec"), bare)  # noqa: S102 - ours
    kit = ServeApp(build_api(local_backend(Settings(workspace=ws)), auth=True, workspace=ws))
    body = json.dumps({"instances": feature_records(1, seed=31)}).encode()
    target = f"/v1/models/{MODEL}:predict"

    class Scope:
        proto, method, path, query_string = "http", "POST", target, ""
        headers = {"host": "127.0.0.1", "content-type": "application/json",
                   "authorization": f"Bearer {token}", "content-length": str(len(body))}

    class Proto:
        status = 0

        async def __call__(self) -> bytes:
            return body

        def response_bytes(self, status: int, headers: list, payload: bytes) -> None:
            self.status = status

    junk = {mb: np.ones(mb * 2**20 // 8) for mb in EVICT_MB if mb}

    async def one(app, evict: int, count: int) -> float:
        scope, proto, total = Scope(), Proto(), 0.0
        for _ in range(count):
            if evict:
                junk[evict].sum()
            t0 = time.perf_counter()
            await app(scope, proto)
            total += time.perf_counter() - t0
        if proto.status != 200:
            raise RuntimeError(f"cache cost: status {proto.status}")
        return total / count * 1e6

    apps = {"kit": kit.__rsgi__, "granian-bare": bare["app"]}
    for app in apps.values():
        asyncio.run(one(app, 0, 200))
    out: dict[int, dict[str, list[float]]] = {mb: {k: [] for k in apps} for mb in EVICT_MB}
    for _ in range(repeats):
        for mb in EVICT_MB:
            for name, app in apps.items():
                out[mb][name].append(asyncio.run(one(app, mb, n)))
    kit.close()
    return out


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
    from mlops_kit.local.auth import rotate_token

    app_dir = Path(args.workdir)
    (app_dir / "granian_bare_app.py").write_text(GRANIAN_BARE_APP)
    token = rotate_token(ws)  # a bench workspace: a fresh token each run, for every server
    procs = {"kit": start(KIT, env, "1", token),
             "kit-pinned": start(KIT, env, "1", token, "--pin-cpus"),
             "kit-2w": start(KIT, env, "2", token),
             "kit-nocapture": start(KIT, {**env, "MLOPSKIT_CAPTURE": "false"}, "1", token),
             "kit-uvicorn": start(KIT_UVICORN, env, token),
             "reference": start(REFERENCE, env, str(onnx_path), json.dumps(numeric)),
             "granian-bare": start(GRANIAN_BARE, env, str(app_dir), str(onnx_path),
                                   json.dumps(numeric))}
    time.sleep(2.0)  # the process-managed servers print their URL before the worker listens
    body = json.dumps({"instances": feature_records(1, seed=31)}).encode()
    path = f"/v1/models/{MODEL}:predict"
    servers = {}
    for name, (_, url, token) in procs.items():
        headers = {"Content-Type": "application/json"}
        if token != "-":
            headers["Authorization"] = f"Bearer {token}"
        servers[name] = (url + path, headers)
    plan = [(c, n) for c in (1, 4)
            for n in ("kit", "kit-pinned", "kit-nocapture", "kit-uvicorn", "reference",
                      "granian-bare")]
    plan += [(16, "kit"), (16, "kit-2w")]
    runs: dict[tuple[str, int], list[dict]] = {}
    fair: list[tuple[dict, dict, int]] = []
    fair_pinned: list[tuple[dict, dict, int]] = []
    try:
        for url, headers in servers.values():  # warm: model loaded, first capture made
            load(url, body, headers, 2, 1)
        for _ in range(rounds):
            for conns, name in plan:
                url, headers = servers[name]
                cpu0 = tree_cpu_s(procs[name][0].pid)
                r = load(url, body, headers, conns, seconds)
                served = r["rps"] * seconds
                r["cpu_us"] = (tree_cpu_s(procs[name][0].pid) - cpu0) / served * 1e6 \
                    if served else 0.0
                if r["errors"] or r["socket_errors"]:
                    raise RuntimeError(f"{name} at c={conns}: {r}")
                runs.setdefault((name, conns), []).append(r)
            fair.append(fairness(*servers["kit"], max(2.0, seconds)))
            fair_pinned.append(fairness(*servers["kit-pinned"], max(2.0, seconds)))
    finally:
        for proc, _, _ in procs.values():
            proc.stdin.close()
        for proc, _, _ in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # granian-bare: granian stops on SIGTERM
                proc.terminate()
                proc.wait(timeout=60)
    client = runs[("kit", 1)][0]["client"]
    med = {k: {m: summary([r[m] for r in v]) for m in ("rps", "p50", "p99", "cpu_us")}
           for k, v in runs.items()}
    rows = []
    for fig, name, base, conns, metric, target, higher in FIGURES:
        a, b = med[(name, conns)], med[(base, conns)]
        ratio = a[metric]["median"] / b[metric]["median"]
        met = None if target is None else (ratio >= target if higher else ratio <= target)
        label, unit = _LABEL[metric]
        note = (f"{client}, {seconds} s x {rounds} rounds, c={conns}, 1 record/request; "
                f"{name} {a['rps']['median']:,.0f} req/s p50/p99 {a['p50']['median']:.2f}/"
                f"{a['p99']['median']:.2f} ms, {a['cpu_us']['median']:.0f} µs CPU/request; "
                f"{base} {b['rps']['median']:,.0f} req/s p50/p99 {b['p50']['median']:.2f}/"
                f"{b['p99']['median']:.2f} ms, {b['cpu_us']['median']:.0f} µs CPU/request; "
                "machine shared with other engineers' tests")
        rows.append(row(f"HTTP load, {fig}, c={conns}", MODEL, label, a[metric], unit,
                        baseline=base, baseline_stats=b[metric], ratio=ratio,
                        ratio_label=f"x {base}'s {label}",
                        target=None if target is None else f"{'>=' if higher else '<='} {target}x",
                        met=met, note=note))
    for label_, runs_ in (("kit 1 worker", fair), ("kit 1 worker, --pin-cpus", fair_pinned)):
        alone = summary([a["p99"] for a, _, _ in runs_])
        loaded = summary([b["p99"] for _, b, _ in runs_])
        ratio = loaded["median"] / alone["median"]
        rows.append(row(f"HTTP load, fairness: 1-record client with three 10,000-row batch "
                        f"clients ({label_})", MODEL, "p99 latency", loaded, "ms",
                        baseline="the same client alone", baseline_stats=alone, ratio=ratio,
                        ratio_label="x its p99 alone", target="<= 5x", met=ratio <= 5,
                        note=f"python client, {label_}; batches answered: "
                             f"{sum(d for _, _, d in runs_)}; p50 alone/loaded "
                             f"{summary([a['p50'] for a, _, _ in runs_])['median']:.2f}/"
                             f"{summary([b['p50'] for _, b, _ in runs_])['median']:.2f} ms"))
    token_ = next(t for _, _, t in procs.values() if t != "-")
    cold = cache_cost(ws, onnx_path, numeric, token_, 50 if args.smoke else 400,
                      1 if args.smoke else 5)
    for mb, by in cold.items():
        k, b = summary(by["kit"]), summary(by["granian-bare"])
        rows.append(row(f"HTTP load, cache cost: the kit's application vs the bare one, in "
                        f"process, {'warm caches' if not mb else f'{mb} MB evicted first'}",
                        MODEL, "time per request", k, "µs", baseline="granian-bare app",
                        baseline_stats=b, ratio=k["median"] / b["median"],
                        ratio_label="x the bare app's time",
                        note=f"kit {k['median']:.0f} µs, bare {b['median']:.0f} µs: the kit's "
                             f"own work {k['median'] - b['median']:.0f} µs a request "
                             f"(medians of {len(by['kit'])} x {50 if args.smoke else 400} "
                             "requests; machine shared)"))
    path_out = write_result("http_load", rows, smoke=args.smoke, out_dir=args.out,
                            extra={"client": client,
                                   "servers": {f"{n} c={c}": med[(n, c)] for n, c in med}})
    print(path_out)
    for r in rows:
        print(f"{r['figure']:<80} {r['metric']:<12} {r['ratio']:.2f} {r['target'] or ''} "
              f"{r['note']}")


if __name__ == "__main__":
    main()
