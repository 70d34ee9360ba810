"""Console: time to a full page from the local server (`mlops-kit serve`, a signed-in browser
session: cookie), on a registry of 100 models x 50 versions with 24 monitoring runs and 10
alias moves per model and a model card per version (smoke: 5 x 5). Target: each page < 200 ms.

The registry is written through the real Registry (SQLite table) and object store, without
training 5,000 models: the console only reads what the lifecycle writes. The server runs in
its own process; one keep-alive client requests each page in turn.

Baseline: the same page's reads alone (console.data in this process, no rendering, no HTTP),
so the ratio is what rendering and HTTP add on top of the registry reads.

Then the reads alone on every table backend (issue 28: <= 3 table calls per page whatever the
number of models and versions): 50 models x 20 versions (smoke: 3 x 3) copied row for row into
SQLite, DynamoDB (moto, in process) and Table storage (Azurite, when installed: `make azurite`),
the models list and a model page read through a wrapper that counts the table port's calls,
after (the summaries: core/registry/summary.py) vs before (the reads the console made before,
kept below as `before_*`). moto answers in process, so its times are Python, not network: the
call count is the figure that scales with a remote table's round trips.

Then a model past the summary's window (issue 28's follow-up: the summary keeps the newest
VERSIONS_LIMIT versions and counts the others; unbounded it grew ~71 B a version and crossed the
400 KB item cap near 5,600 versions): one model of 2,000 versions (smoke: 150) on every backend,
its summary's size, its model page's reads (the newest VERSIONS_LIMIT versions vs every version,
as the page read them before) and a registry transaction (register a version: reserve and
complete), each vs the same with the window unbounded (the summary as it was)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
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


# -- the reads per page on every table backend (issue 28) -------------------------------------
class CountingTable:
    """The table port, counting its calls."""

    def __init__(self, table) -> None:
        self.table, self.calls = table, Counter()

    def __getattr__(self, name: str):
        attr = getattr(self.table, name)
        if name not in ("get", "put", "delete", "query", "transact"):
            return attr

        def counted(*args, **kwargs):
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


def before_overview(reg) -> list[dict]:
    """The models list's reads before the summaries: 4 per model."""
    from mlops_kit.core.registry.summary import primary_metric

    out = []
    for name in sorted(reg.list_models()):
        runs = reg.monitoring_runs(name, limit=1)
        aliases = reg.aliases(name)
        champion = (aliases.get("champion") or {}).get("version")
        metric = None
        if champion is not None:
            record = reg.get_version(name, int(champion))
            key = primary_metric(record)
            metric = (key, (record.get("metrics") or {}).get(key)) if key else None
        out.append({"model": name, "latest": reg.latest_version(name), "aliases": aliases,
                    "champion_metric": metric, "monitoring": runs[-1] if runs else None})
    return out


def before_model(reg, name: str) -> dict:
    """A model page's reads before the summaries: 5 queries."""
    from mlops_kit.core.registry.experiments import RunStore

    history = reg.history(name)
    return {"versions": reg.list_versions(name), "aliases": reg.aliases(name),
            "history": history[-200:], "monitoring": reg.monitoring_runs(name, limit=60),
            "runs": RunStore(reg.table, reg.clock).list_runs(name)}


def copy_rows(db: Path, table) -> int:
    """Every row of a SQLite registry into another table, one put each (not transactions:
    moto deep-copies the whole table for each one)."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT pk, sk, item FROM items ORDER BY pk, sk").fetchall()
    for pk, sk, item in rows:
        table.put(pk, sk, json.loads(item))
    return len(rows)


def _tables(smoke: bool) -> list[tuple[str, Callable]]:
    """(backend, a context manager yielding a fresh table)."""
    import contextlib
    import tempfile

    @contextlib.contextmanager
    def sqlite():
        from mlops_kit.adapters.local import SqliteTable

        with tempfile.TemporaryDirectory() as d:
            yield SqliteTable(Path(d) / "t.db")

    @contextlib.contextmanager
    def dynamodb():
        from functools import partial

        from moto import mock_aws

        from mlops_kit.adapters.aws import DynamoTable, clear_clients, client

        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        old = {k: os.environ.get(k) for k in [*env, "AWS_ENDPOINT_URL"]}
        os.environ.update(env)
        os.environ.pop("AWS_ENDPOINT_URL", None)
        clear_clients()
        try:
            with mock_aws():
                ddb = partial(client, "dynamodb", region="us-east-1")
                keys = [("pk", "HASH"), ("sk", "RANGE")]
                ddb().create_table(
                    TableName="t", BillingMode="PAY_PER_REQUEST",
                    KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
                    AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"}
                                          for k, _ in keys])
                yield DynamoTable("t", ddb)
        finally:
            clear_clients()
            for k, v in old.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)

    @contextlib.contextmanager
    def azure_table():
        from functools import partial

        from mlops_kit.adapters.azure import AzureTable, StorageAccount, clear_clients
        from mlops_kit.adapters.azure._clients import table_service
        from mlops_kit.emulate.azurite import running

        with running() as emu:
            clear_clients()
            service = partial(table_service, StorageAccount(connection_string=emu.connection_string))
            service().create_table("consolebench")
            try:
                yield AzureTable("consolebench", service)
            finally:
                clear_clients()

    out = [("SQLite", sqlite), ("DynamoDB (moto)", dynamodb)]
    from mlops_kit.emulate.azurite import cache_dir, installed_version

    if installed_version(cache_dir()):
        out.append(("Table storage (Azurite)", azure_table))
    else:
        print("Azurite is not installed (make azurite): Table storage left out")
    return out


def reads_per_backend(args, models: int, versions: int, n: int) -> list[dict]:
    from mlops_kit.adapters.local import FileObjectStore
    from mlops_kit.clock import FixedClock
    from mlops_kit.console.data import ConsoleData
    from mlops_kit.core.registry import Registry

    ws = args.workdir / f"console-reads-{models}x{versions}"
    if not (ws / "registry.db").exists():
        populate(ws, models, versions, runs=24, moves=min(10, versions))
    mid = f"model-{models // 2:03d}"
    rows = []
    for backend, make in _tables(args.smoke):
        with make() as table:
            t0 = time.perf_counter()
            copied = copy_rows(ws / "registry.db", table)
            print(f"{backend}: {copied} rows copied in {time.perf_counter() - t0:.1f} s")
            counting = CountingTable(table)
            reg = Registry(counting, FixedClock())
            data = ConsoleData(FileObjectStore(ws / "store"), reg)
            pages = {"models list": (data.overview, lambda r=reg: before_overview(r)),
                     "model page": (lambda d=data: d.model(mid),
                                    lambda r=reg: before_model(r, mid))}
            for label, (after, before) in pages.items():
                calls = {}
                for which, fn in (("after", after), ("before", before)):
                    counting.calls.clear()
                    fn()
                    calls[which] = sum(counting.calls.values())
                after_ms = time_calls(after, n, warmup=1)
                before_ms = time_calls(before, max(3, n // 4), warmup=1)
                s, bs = summary(after_ms), summary(before_ms)
                rows.append(row(
                    f"console reads: {label}, {backend}", f"{models} models x {versions} versions",
                    "the page's table reads", s, "ms",
                    baseline="the same page's reads before the summaries", baseline_stats=bs,
                    ratio=bs["median"] / s["median"] if s["median"] else None,
                    ratio_label="x faster", target="<= 3 table calls per page",
                    met=calls["after"] <= 3, calls=calls["after"], calls_before=calls["before"],
                    backend=backend,
                    note=f"{calls['after']} table calls (before: {calls['before']}); in process,"
                         f" no rendering; {copied} rows in the table"))
    return rows


def _unbounded():
    """The summary as it was before its window: every version in it."""
    from unittest import mock

    from mlops_kit.core.registry import summary as summaries

    return mock.patch.object(summaries, "VERSIONS_LIMIT", 10**9)


def past_the_window(args, versions: int, n: int) -> list[dict]:
    import contextlib

    from mlops_kit.adapters.local import FileObjectStore
    from mlops_kit.clock import FixedClock
    from mlops_kit.console.data import ConsoleData
    from mlops_kit.core.registry import Registry
    from mlops_kit.core.registry import summary as summaries
    from mlops_kit.core.registry.experiments import RunStore

    ws = args.workdir / f"console-window-1x{versions}"
    if not (ws / "registry.db").exists():
        populate(ws, 1, versions, runs=24, moves=10)
    name, rows = "model-000", []
    for backend, make in _tables(args.smoke):
        with make() as table:
            copied = copy_rows(ws / "registry.db", table)
            counting = CountingTable(table)
            reg = Registry(counting, FixedClock())
            data = ConsoleData(FileObjectStore(ws / "store"), reg)
            sent: Counter = Counter()
            if hasattr(table, "ddb"):  # DynamoDB: the requests botocore sends, pages included
                table.ddb.meta.events.register("before-call.dynamodb.*",
                                               lambda model, s=sent, **_: s.update([model.name]))
            sizes = {"after": len(json.dumps(reg.rebuild_summary(name), default=str))}
            with _unbounded():
                sizes["before"] = len(json.dumps(reg.rebuild_summary(name), default=str))
            reg.rebuild_summary(name)

            def before_page(r=reg, d=data):
                return (r.list_versions(name), r.summary(name),
                        RunStore(r.table, r.clock).list_runs(name))

            calls, api = {}, {}
            for which, fn in (("after", lambda d=data: d.model(name)), ("before", before_page)):
                counting.calls.clear()
                sent.clear()
                fn()
                calls[which], api[which] = sum(counting.calls.values()), sum(sent.values())
            after_ms, before_ms = [], []
            for _ in range(max(3, n // 4)):  # alternated: the machine is shared
                after_ms += time_calls(lambda d=data: d.model(name), 4, warmup=0)
                before_ms += time_calls(before_page, 4, warmup=0)
            s, bs = summary(after_ms), summary(before_ms)
            requests = (f"; DynamoDB requests {api['after']} (before: {api['before']})"
                        if api["after"] else "")
            rows.append(row(
                f"console reads: model page past the window, {backend}", f"1 model x {versions}"
                " versions", "the page's table reads", s, "ms",
                baseline="every version (the page's reads before the window)",
                baseline_stats=bs, ratio=bs["median"] / s["median"] if s["median"] else None,
                ratio_label="x faster", target="<= 3 table calls per page",
                met=calls["after"] <= 3, calls=calls["after"], calls_before=calls["before"],
                backend=backend, note=f"{calls['after']} table calls (before: "
                f"{calls['before']}){requests}; newest {summaries.VERSIONS_LIMIT} of {versions}"
                f" versions read; in process, no rendering; {copied} rows in the table"))
            stamps: dict[str, list[float]] = {"after": [], "before": []}
            k = [0]

            def register(r=reg, k=k):
                k[0] += 1
                res = r.reserve_version(name, f"bench-{k[0]}", {})
                r.complete_version(name, res.version, {"status": "rejected", "reasons": ["x"]})

            for _ in range(3):  # blocks alternated (a switch rebuilds the summary)
                for which in ("after", "before"):
                    ctx = _unbounded() if which == "before" else contextlib.nullcontext()
                    with ctx:
                        reg.rebuild_summary(name)
                        stamps[which] += time_calls(register, max(2, n // 8), warmup=1)
            s, bs = summary(stamps["after"]), summary(stamps["before"])
            rows.append(row(
                f"registry: a version registered past the window, {backend}",
                f"1 model x {versions} versions", "reserve + complete", s, "ms",
                baseline="the same with the summary unbounded (every version in it)",
                baseline_stats=bs, ratio=bs["median"] / s["median"] if s["median"] else None,
                ratio_label="x faster", target="summary < 400 KB whatever the versions",
                met=sizes["after"] < 100_000, backend=backend, summary_bytes=sizes["after"],
                summary_bytes_before=sizes["before"],
                note=f"summary {sizes['after'] / 1024:.1f} KiB (unbounded: "
                     f"{sizes['before'] / 1024:.1f} KiB, ~71 B a version: 400 KB near 5,600 "
                     f"versions, where every transaction of the model failed); blocks of "
                     f"{max(2, n // 8)} alternated 3 times on a shared machine; in process"))
    return rows


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
    rows += reads_per_backend(args, *((3, 3, 3) if args.smoke else (50, 20, 20)))
    rows += past_the_window(args, *((150, 4) if args.smoke else (2000, 16)))
    print(write_result("console", rows, smoke=args.smoke, out_dir=args.out))


if __name__ == "__main__":
    main()
