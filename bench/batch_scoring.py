"""Batch scoring: a CSV of N churn records scored by core.scoring (scoring/ upload -> Parquet
parts + manifest) on the local backend with the forest of the HTTP bench (churn_rf), each run
in a fresh subprocess; rows/s and peak RSS (the child's VmHWM).

Baselines, same model and file:
- what a user writes instead: pandas read_csv in 100k-row chunks + the same sklearn pipeline's
  predict_proba (joblib), timed in-process from the first read (as the kit is timed from the
  call: neither counts interpreter start or imports), with the forest's n_jobs as trained (1,
  the target's row) and again with n_jobs=-1 (every core, as the kit's scoring uses: the
  strongest loop a user would write; reported, no target);
- `mlflow models predict -m <model> -i file.csv -t csv --env-manager local` (the sklearn
  pipeline saved with mlflow.sklearn, run from the Makefile's .venv-mlflow), timed as a
  command: compared with the kit's process timed the same way (start, imports, copying the
  file into the store, scoring, exit).

Targets (issue 27): >= 1.5x the pandas + sklearn loop and >= 3x mlflow at 1M rows; peak RSS
flat from 1M to the large size (10M; a 10M-row file under 500 MB).

Fan-out rows: a 1M-row upload on the local backend, on AWS (moto, IAM enforced: each
function under its role's policy, tests/moto_support.py) and on Azure (the Functions app's
validate function on Azurite, Event Grid and queue messages as the host hands them over) with
the chunk size set for 5 chunks, every queue message delivered twice: chunks, rows scored +
rejected = rows in, manifests written (1 expected). `--only fanout` runs these rows alone and
prints them (bench/results untouched)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, parse_args, prepare_models, row, summary, write_result
from mlops_kit.core.scoring.engine import SCORE_THREADS

MODEL = "churn_rf"
PEAK = r"""
def peak_kb():
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM")).split()[1])
"""

KIT = PEAK + r"""
import json, sys, time
from mlops_kit.bootstrap import local_backend
from mlops_kit.settings import Settings
from mlops_kit.core.scoring.usecase import score_upload
b = local_backend(Settings(workspace=sys.argv[1], backend="local"))
b.ctx.scoring_chunk_bytes = 0  # the whole file in this process (fan-out: the rows below)
b.ctx.scoring_jobs = None  # and not routed to the batch engine (10M rows would be)
key = f"scoring/{sys.argv[4]}/" + sys.argv[3]
b.ctx.store.put_file(key, sys.argv[2])
t0 = time.perf_counter()
r = score_upload(b.ctx, sys.argv[4], key, etag=str(time.time()))
dt = time.perf_counter() - t0
assert r["status"] == "scored", r
print(json.dumps({"seconds": dt, "rows": r["rows_scored"], "rss_kb": peak_kb()}))
"""

SKLEARN = PEAK + r"""
import json, sys, time
import joblib, pandas as pd
pipe = joblib.load(sys.argv[2])
if len(sys.argv) > 3:  # the forest's own n_jobs (its trees on every core; the column
    pipe[-1].set_params(n_jobs=int(sys.argv[3]))  # transformer's would spawn processes)
t0 = time.perf_counter()
n = 0
for df in pd.read_csv(sys.argv[1], chunksize=100_000):
    n += len(pipe.predict_proba(df))
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "rows": n, "rss_kb": peak_kb()}))
"""

MLFLOW_SAVE = r"""
import sys, joblib, mlflow.sklearn
mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2],  # our own file: trusted
                          skops_trusted_types=["numpy.dtype", "sklearn.tree._tree.Tree"])
"""

FANOUT_LOCAL = r"""
import json, sys, time
from mlops_kit.bootstrap import local_backend
from mlops_kit.core import layout
from mlops_kit.local.worker import put_object, run_once
from mlops_kit.settings import Settings
b = local_backend(Settings(workspace=sys.argv[1], backend="local"))
body = open(sys.argv[2], "rb").read()
b.ctx.scoring_chunk_bytes = len(body) // 5 + 1
name = f"fanout-{time.time_ns()}"  # a new job each run (the etag is the content's)
manifest = layout.predictions_manifest_key(sys.argv[3], name)
writes, put = [], b.ctx.store.put
b.ctx.store.put = lambda k, d, **kw: (writes.append(k) if k == manifest else None, put(k, d, **kw))[1]
send = b.ctx.scoring_queue.send
b.ctx.scoring_queue.send = lambda m, **kw: (send(m, **kw), send(m, **kw))[0]  # all twice
t0 = time.perf_counter()
put_object(b, f"scoring/{sys.argv[3]}/{name}.csv", body)
del body
results = run_once(b)
dt = time.perf_counter() - t0
m = json.loads(b.ctx.store.get(manifest))
print(json.dumps({"seconds": dt, "chunks": len(m["chunks"]), "rows_in": m["rows_in"],
                  "rows_scored": m["rows_scored"], "rows_rejected": m["rows_rejected"],
                  "manifest_writes": len(writes),
                  "duplicates": sum(1 for r in results if r.get("status") == "duplicate")}))
"""

FANOUT_AWS = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
import os
from mlops_kit.core.synthetic import CHURN_SPEC, churn_csv
from tests.moto_support import aws_world
body = open(sys.argv[1], "rb").read()
env = {"MLOPSKIT_SCORING_CHUNK_BYTES": str(len(body) // 5 + 1)}
with aws_world(spec=CHURN_SPEC, extra_env=env) as w:
    w.put("datasets/churn/train.csv", churn_csv(4000, seed=7))  # the demo model, trained there
    w.pumps["validate"].drain(); w.pumps["train"].drain()
    bucket = w.res.data_bucket
    manifest = "predictions/churn/fanout/_manifest.json"
    pump = w.pumps["validate"]
    from mlops_kit.adapters.aws.store import S3ObjectStore
    writes, put = [], S3ObjectStore.put
    def counted(self, key, data, **kw):
        if key == manifest:
            writes.append(key)
        return put(self, key, data, **kw)
    S3ObjectStore.put = counted
    once = pump.handler
    pump.handler = lambda event, ctx: (once(event, ctx), once(event, ctx))[1]  # all twice
    t0 = time.perf_counter()
    w.put("scoring/churn/fanout.csv", body)
    del body
    for _ in range(200):
        if not pump.poll_once():
            break
    dt = time.perf_counter() - t0
    m = json.loads(w.s3.get_object(Bucket=bucket, Key=manifest)["Body"].read())
    print(json.dumps({"seconds": dt, "chunks": len(m["chunks"]), "rows_in": m["rows_in"],
                      "rows_scored": m["rows_scored"], "rows_rejected": m["rows_rejected"],
                      "manifest_writes": len(writes),
                      "deliveries": pump.delivered * 2, "failed": pump.failed}))
"""

FANOUT_AZURE = r"""
import json, os, sys, time, uuid
sys.path.insert(0, sys.argv[2])
from azure.functions.queue import QueueMessage
from mlops_kit.adapters.azure.store import BlobObjectStore
from mlops_kit.core.synthetic import CHURN_SPEC, churn_csv
from mlops_kit.emulate.azure_emulator import azure_env
from mlops_kit.emulate.azure_functions import FunctionsApp
from mlops_kit.emulate.azurite import running
import yaml
body = open(sys.argv[1], "rb").read()
def message(raw, n=1):
    return QueueMessage(id=uuid.uuid4().hex, body=raw, dequeue_count=n)
with running() as emu:
    os.environ.update(azure_env(emu.connection_string, uuid.uuid4().hex[:8]))
    os.environ.update({"MLOPSKIT_REFRESH_SECONDS": "0",
                       "MLOPSKIT_SCORING_CHUNK_BYTES": str(len(body) // 5 + 1)})
    from mlops_kit.adapters.azure.factory import build, provision
    from mlops_kit.settings import Settings
    names = provision(Settings())
    app, adapters = FunctionsApp.load(), build(Settings())
    fn = lambda n: app.functions[n].get_user_function()
    def grid(key):  # the Event Grid BlobCreated message the subscription queues
        return message(json.dumps({
            "subject": f"/blobServices/default/containers/{names.containers['data']}/blobs/{key}",
            "eventType": "Microsoft.Storage.BlobCreated", "id": uuid.uuid4().hex,
            "data": {"api": "PutBlob"}, "dataVersion": "", "metadataVersion": "1",
            "eventTime": "2026-01-01T00:00:00Z", "topic": "/subscriptions/x"}).encode())
    store = adapters.store
    store.put("specs/churn.yaml", yaml.safe_dump(CHURN_SPEC).encode())
    store.put("datasets/churn/train.csv", churn_csv(4000, seed=7))  # the demo model
    fn("validate")(grid("datasets/churn/train.csv"))
    [job] = adapters.train_queue.receive(1)
    adapters.train_queue.ack(job)
    fn("train")(message(json.dumps(job.body).encode()))
    manifest = "predictions/churn/fanout/_manifest.json"
    writes, put = [], BlobObjectStore.put
    def counted(self, key, data, **kw):
        if key == manifest:
            writes.append(key)
        return put(self, key, data, **kw)
    BlobObjectStore.put = counted
    queue, deliveries, failed = adapters.validate_queue, 0, 0
    t0 = time.perf_counter()
    store.put("scoring/churn/fanout.csv", body)
    del body
    pending = [grid("scoring/churn/fanout.csv").get_body()]
    while pending:
        for raw in pending * 2:  # every message delivered twice
            try:
                fn("validate")(message(raw))
                deliveries += 1
            except Exception:
                failed += 1
        pending = []
        while msgs := queue.receive(10):
            for m in msgs:
                pending.append(json.dumps(m.body).encode())
                queue.ack(m)
    dt = time.perf_counter() - t0
    m = json.loads(store.get(manifest))
    print(json.dumps({"seconds": dt, "chunks": len(m["chunks"]), "rows_in": m["rows_in"],
                      "rows_scored": m["rows_scored"], "rows_rejected": m["rows_rejected"],
                      "manifest_writes": len(writes), "deliveries": deliveries,
                      "failed": failed}))
"""


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def make_csv(workdir: Path, n: int, bad_every: int = 0) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from mlops_kit.core.synthetic import churn_columns

    path = workdir / f"score-{n}{'-bad' if bad_every else ''}.csv"
    if path.exists():
        return path
    with pacsv.CSVWriter(str(path) + ".tmp", _schema()) as out:
        step = 1_000_000
        for lo in range(0, n, step):
            cols = churn_columns(min(step, n - lo), seed=n + lo)
            cols.pop("churned", None)
            if bad_every:  # some rows break the spec: age below its minimum
                age = np.asarray(cols["age"], dtype=float)
                age[::bad_every] = 7
                cols["age"] = age.tolist()
            out.write_table(pa.table(cols, schema=_schema()))
    os.replace(str(path) + ".tmp", path)
    return path


def _schema():
    import pyarrow as pa

    from mlops_kit.core.synthetic import churn_columns

    cols = churn_columns(10, seed=1)
    cols.pop("churned", None)
    return pa.table(cols).schema


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[dict, float]:
    """Run a child; (its last JSON line, wall seconds). Children may cache bytecode, as an
    installed package has its .pyc files (with PYTHONDONTWRITEBYTECODE set, as on this
    machine, every import of pandas would compile it again: 1.2 s; see spec_init.py)."""
    env = {k: v for k, v in (env or os.environ).items() if k != "PYTHONDONTWRITEBYTECODE"}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=7200, env=env)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    lines = out.stdout.strip().splitlines()
    return (json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}), wall


def py(script: str, *args: object) -> list[str]:
    return [sys.executable, "-c", script, *map(str, args)]


def mlflow_rows(workdir: Path, joblib_path: str, csv: Path, n: int) -> tuple[float, float] | None:
    """(rows/s of the command, seconds), None without the mlflow venv (`make mlflow-server`)."""
    venv = ROOT / ".venv-mlflow" / "bin"
    if not (venv / "mlflow").exists():
        return None
    model_dir = workdir / "mlflow-model"
    if not (model_dir / "MLmodel").exists():
        subprocess.run(["rm", "-rf", str(model_dir)], check=True)
        run([str(venv / "python"), "-c", MLFLOW_SAVE, joblib_path, str(model_dir)])
    out = workdir / "mlflow-out.json"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"file://{workdir}/mlruns"}
    _, wall = run([str(venv / "mlflow"), "models", "predict", "-m", str(model_dir), "-i",
                   str(csv), "-t", "csv", "-o", str(out), "--env-manager", "local"], env)
    out.unlink(missing_ok=True)
    return n / wall, wall


def _only() -> str | None:
    """`--only fanout`: the fan-out rows alone, printed, bench/results left as they are
    (taken off argv before bench/common.py's shared parser)."""
    if "--only" not in sys.argv:
        return None
    i = sys.argv.index("--only")
    what = sys.argv[i + 1] if i + 1 < len(sys.argv) else ""
    if what != "fanout":
        sys.exit("--only: expected 'fanout'")
    del sys.argv[i:i + 2]
    return what


def fanout_rows(args, small: int) -> list[dict]:
    """A 1M-row upload (the smoke size with --smoke), 5 chunks, every message twice: on the
    local backend, on AWS (moto, IAM enforced) and on Azure (the Functions app on Azurite)."""
    rows = []
    path = make_csv(args.workdir, small, bad_every=1000)
    fan, _ = run(py(FANOUT_LOCAL, Path(args.workdir) / "ws", path, "churn"))
    rows.append(_fan_row("local", small, fan))
    if not args.smoke or os.environ.get("BENCH_SCORING_AWS"):
        aws, _ = run(py(FANOUT_AWS, path, "-", ROOT))
        rows.append(_fan_row("AWS (moto, IAM enforced)", small, aws))
        azure, _ = run(py(FANOUT_AZURE, path, ROOT))
        rows.append(_fan_row("Azure (Functions app on Azurite)", small, azure))
    return rows


def main() -> None:
    only = _only()
    args = parse_args(__doc__ or "")
    models = prepare_models(args.workdir, args.smoke)
    if only == "fanout":
        small = 2_000 if args.smoke else 1_000_000
        print(json.dumps(fanout_rows(args, small), indent=2))
        return
    ws = models["workspace"]
    small, large = (2_000, 10_000) if args.smoke else (1_000_000, int(
        os.environ.get("BENCH_SCORING_LARGE", 10_000_000)))
    repeats = 1 if args.smoke else int(os.environ.get("BENCH_SCORING_REPEATS", 3))
    rows, peaks = [], {}
    path = make_csv(args.workdir, small)
    warm = make_csv(args.workdir, 2_000)  # a warm-up of each child, not counted (.pyc files)
    run(py(KIT, ws, warm, "warm-up.csv", MODEL))
    run(py(SKLEARN, warm, models["models"][MODEL]["joblib"]))
    mlflow_rows(args.workdir, models["models"][MODEL]["joblib"], warm, 2_000)
    for model in (MODEL, "churn"):  # the forest (the targets), then the demo model
        joblib_path = models["models"][model]["joblib"]
        kits, walls, bases, alls = [], [], [], []
        for _ in range(repeats):  # alternated: a load change hits both sides
            kit, wall = run(py(KIT, ws, path, f"bench-{small}.csv", model))
            kits.append(kit)
            walls.append(wall)
            bases.append(run(py(SKLEARN, path, joblib_path))[0])
            if model == MODEL:
                alls.append(run(py(SKLEARN, path, joblib_path, -1))[0])
        rates = [k["rows"] / k["seconds"] for k in kits]
        base_rates = [b["rows"] / b["seconds"] for b in bases]
        ratio = summary(rates)["median"] / summary(base_rates)["median"]
        rows.append(row(f"batch scoring, {small:,} rows CSV", model, "rows/s", summary(rates),
                        "rows/s", baseline="pandas read_csv chunks + sklearn predict_proba",
                        baseline_stats=summary(base_rates), ratio=ratio,
                        ratio_label="kit / baseline (throughput)",
                        target=">= 1.5x" if model == MODEL else None,
                        met=ratio >= 1.5 if model == MODEL else None,
                        note=f"every row checked, rejects and Parquet parts written; kit "
                             f"scoring on {SCORE_THREADS} threads (its cores), the baseline "
                             f"with the model's n_jobs=1; {repeats} runs each, alternated; "
                             f"machine shared with other work (load {_load()})"))
        if model != MODEL:
            continue
        all_rates = [b["rows"] / b["seconds"] for b in alls]
        ratio = summary(rates)["median"] / summary(all_rates)["median"]
        rows.append(row(f"batch scoring, {small:,} rows CSV, baseline on every core", model,
                        "rows/s", summary(rates), "rows/s",
                        baseline="pandas read_csv chunks + sklearn predict_proba, forest "
                                 "n_jobs=-1", baseline_stats=summary(all_rates), ratio=ratio,
                        ratio_label="kit / baseline (throughput)",
                        note=f"both on all {os.cpu_count()} cores; the same kit runs as the "
                             f"row above, alternated with it"))
        peaks[small] = max(k["rss_kb"] for k in kits)
        ml = mlflow_rows(args.workdir, joblib_path, path, small)
        if ml is not None:
            wall_rate = small / summary(walls)["median"]
            rows.append(row(f"batch scoring command, {small:,} rows CSV", model, "rows/s",
                            summary([small / w for w in walls]), "rows/s",
                            baseline="mlflow models predict (--env-manager local)",
                            baseline_stats=summary([ml[0]]), ratio=wall_rate / ml[0],
                            ratio_label="kit / mlflow (throughput)", target=">= 3x",
                            met=wall_rate / ml[0] >= 3,
                            note=f"both timed as a process: kit {summary(walls)['median']:.1f} s"
                                 f" (start, imports, file copied into the store, scoring), "
                                 f"mlflow {ml[1]:.1f} s (1 run)"))
        base_peak = max(b["rss_kb"] for b in bases)
        rows.append(row(f"batch scoring peak RSS, {small:,} rows", model, "peak RSS",
                        summary([peaks[small] / 1024]), "MB",
                        baseline="pandas read_csv chunks + sklearn predict_proba",
                        baseline_stats=summary([base_peak / 1024]),
                        ratio=peaks[small] / base_peak, ratio_label="kit / baseline (memory)"))
    big = make_csv(args.workdir, large)  # the large file: memory (and speed) of the kit alone
    kit, _ = run(py(KIT, ws, big, f"bench-{large}.csv", MODEL))
    peaks[large] = kit["rss_kb"]
    rows.append(row(f"batch scoring, {large:,} rows CSV", MODEL, "rows/s",
                    summary([kit["rows"] / kit["seconds"]]), "rows/s",
                    note=f"{kit['seconds']:.1f} s; peak RSS {kit['rss_kb'] / 1024:.0f} MB "
                         "(target < 500 MB)"))
    growth = peaks[large] / peaks[small]
    rows.append(row("batch scoring memory growth", MODEL, f"peak RSS {large:,} / {small:,}",
                    summary([growth]), "x", target="<= 1.3x and < 500 MB",
                    met=growth <= 1.3 and peaks[large] < 500 * 1024,
                    note=f"{peaks[small] / 1024:.0f} MB -> {peaks[large] / 1024:.0f} MB"))
    # fan-out under duplicate delivery: the demo model, 5 chunks, every message twice
    rows += fanout_rows(args, small)
    print(json.dumps(rows, indent=2))
    write_result("batch_scoring", rows, smoke=args.smoke, out_dir=args.out)


def _fan_row(where: str, n: int, r: dict) -> dict:
    ok = (r["chunks"] >= 4 and r["rows_in"] == n
          and r["rows_scored"] + r["rows_rejected"] == n and r.get("manifest_writes") in (1, None))
    return row(f"batch scoring fan-out, {where}, {n:,} rows, every message twice", "churn",
               "chunks", summary([r["chunks"]]), "chunks",
               target=">= 4 chunks, scored + rejected = rows, one manifest", met=ok,
               note=f"{r['rows_scored']:,} scored + {r['rows_rejected']:,} rejected of "
                    f"{r['rows_in']:,}; manifest written {r.get('manifest_writes')}x; "
                    + (f"{r['deliveries']} deliveries; " if r.get("deliveries") else "") +
                    f"{r['seconds']:.1f} s")


if __name__ == "__main__":
    main()
