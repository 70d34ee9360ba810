"""Issue 23 item 7, as the shell sees it: versions can be archived (kept, never served) and
deleted (artifacts and rows gone, audited), never while served; `mlops-kit jobs` shows work in
flight, and a training whose worker was killed with -9 shows at once (not after the queue's
visibility timeout)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

from mlops_kit.core import layout
from mlops_kit.core.synthetic import churn_csv
from mlops_kit.local.worker import run_once, upload
from tests.e2e.test_cli import spawn


def _json(r):
    def strict(name):
        raise AssertionError(f"{name} is not JSON")

    return json.loads(r.stdout, parse_constant=strict)  # one strict JSON document


def _second_version(b, tmp_path) -> None:
    data = tmp_path / "churn2.csv"
    data.write_bytes(churn_csv(1500, seed=8))
    upload(b, data, "churn")
    results = run_once(b)
    assert results[-1]["version"] == 2, results


def test_archive_and_delete_are_refused_while_served_and_audited(trained, tmp_path):
    ws, reg, store = trained.settings.workspace, trained.ctx.registry, trained.ctx.store
    _second_version(trained, tmp_path)
    champion = reg.champion_version("churn")
    other = 1 if champion == 2 else 2
    # the champion is never archived nor deleted: exit 1, a message, no traceback
    r = spawn(ws, "registry", "archive", "churn", str(champion), "--json")
    assert r.returncode == 1 and "champion" in _json(r)["error"], r
    assert "Traceback" not in r.stderr
    r = spawn(ws, "registry", "delete", "churn", str(champion), "--yes", "--json")
    assert r.returncode == 1 and "champion" in _json(r)["error"]
    assert reg.get_version("churn", champion)["status"] == "registered"
    # archive the other: kept (artifacts, record), never served again
    r = spawn(ws, "registry", "archive", "churn", str(other), "--json")
    assert r.returncode == 0, r.stderr
    assert _json(r)["status"] == "archived"
    assert reg.get_version("churn", other)["status"] == "archived"
    assert store.exists(layout.artifact_key("churn", other))
    r = spawn(ws, "registry", "challenger", "churn", str(other), "--json")
    assert r.returncode != 0 and "archived" in _json(r)["error"]
    assert (reg.get_alias("churn", "challenger") or {}).get("version") is None
    # delete needs --yes (usage, exit 2), then removes artifacts and the row
    r = spawn(ws, "registry", "delete", "churn", str(other), "--json")
    assert r.returncode == 2 and "--yes" in _json(r)["error"]
    assert store.exists(layout.artifact_key("churn", other))
    r = spawn(ws, "registry", "delete", "churn", str(other), "--yes", "--json")
    assert r.returncode == 0, r.stderr
    assert _json(r)["artifacts"] >= 4
    assert list(store.list(layout.model_prefix("churn", other))) == []
    assert [v["version"] for v in reg.list_versions("churn")] == [champion]
    r = spawn(ws, "registry", "show", "churn", str(other), "--json")
    assert r.returncode == 2
    actions = [(h["action"], h["from_version"]) for h in reg.history("churn")]
    assert ("archive", other) in actions and ("delete", other) in actions
    # the served model is never deleted; once unserved it is (history kept)
    r = spawn(ws, "registry", "delete", "churn", "--yes", "--json")
    assert r.returncode == 1 and "served" in _json(r)["error"]
    assert spawn(ws, "registry", "unserve", "churn", "--json").returncode == 0
    r = spawn(ws, "registry", "delete", "churn", "--yes", "--json")
    assert r.returncode == 0, r.stderr
    assert list(store.list("models/churn/")) == [] and reg.list_versions("churn") == []
    assert reg.history("churn")[-1]["action"] == "delete"
    # a new version never reuses a number
    _third = tmp_path / "churn3.csv"
    _third.write_bytes(churn_csv(1500, seed=9))
    upload(trained, _third, "churn")
    assert run_once(trained)[-1]["version"] == 3


KILLED_WORKER = textwrap.dedent("""
    import os, signal, sys
    from mlops_kit.bootstrap import local_backend
    from mlops_kit.core.context import load_spec
    from mlops_kit.core.training import runs
    from mlops_kit.settings import Settings

    b = local_backend(Settings(workspace=sys.argv[1], backend="local"))
    msg = b.ctx.train_queue.receive(1)[0]
    spec = load_spec(b.ctx.store, msg.body["model"])
    # what train_job does first: reserve the version (pending) ... then the worker dies
    b.ctx.registry.reserve_version(msg.body["model"], runs.run_key(msg.body, spec),
                                   runs.lineage(msg.body, spec))
    print("reserved", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_jobs_shows_a_training_whose_worker_was_killed(trained, tmp_path):
    from mlops_kit.core.router import on_object_created

    ws, ctx = trained.settings.workspace, trained.ctx
    data = tmp_path / "churn2.csv"
    data.write_bytes(churn_csv(1500, seed=8))
    upload(trained, data, "churn")
    msg = trained.validate_queue.receive(1)[0]  # validate only: the train message waits
    on_object_created(ctx, msg.body["key"], msg.body.get("etag"), msg.body.get("version_id"))
    trained.validate_queue.ack(msg)
    r = spawn(ws, "jobs", "churn", "--json")
    assert r.returncode == 0, r.stderr
    queued = [j for j in _json(r)["jobs"] if j["kind"] == "train" and j["state"] == "queued"]
    assert len(queued) == 1 and queued[0]["attempts"] == 0, _json(r)
    proc = subprocess.run([sys.executable, "-c", KILLED_WORKER, str(ws)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL and "reserved" in proc.stdout, proc.stderr
    # at once (the message stays invisible for the visibility timeout): pending and orphaned
    r = spawn(ws, "jobs", "churn", "--json")
    assert r.returncode == 0, r.stderr
    view = _json(r)
    rows = [j for j in view["jobs"] if j["kind"] == "train" and j["version"] == 2]
    assert len(rows) == 1, view
    row = rows[0]
    assert row["state"] == "orphaned" and row["attempts"] == 1, row
    assert "is gone" in row["last_error"] and "train" in row["where"]
    assert ctx.registry.get_version("churn", 2)["status"] == "pending"
    assert view["in_flight"] >= 1
    # recently ended work is listed too: v1, registered
    assert any(j["version"] == 1 and j["state"] == "registered" for j in view["jobs"])
    human = spawn(ws, "jobs")
    assert human.returncode == 0 and "orphaned" in human.stdout
    # a worker started after the crash says which message it is waiting on
    worker = spawn(ws, "worker", "--once", "--json")
    assert worker.returncode == 0, worker.stderr
    assert "held by worker pid" in worker.stderr and "churn2.csv" in worker.stderr
    assert os.environ.get("MLOPSKIT_WORKSPACE") != str(ws)  # nothing leaked into this process
