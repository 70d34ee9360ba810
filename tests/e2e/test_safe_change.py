"""Issue 23 items 1, 2, 2b and 8 as a user meets them: subprocess CLI and real HTTP over a
loopback socket, on the local backend, with churn v1 (champion) and v2 (+ required `contract`).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys

import pytest

from mlops_kit.local.auth import ensure_token
from mlops_kit.local.server import ServerThread, build_api
from tests.safe_change import (
    MODEL,
    build_two_contracts,
    mixed_request,
    set_challenger,
    train_breaking_version,
    v1_request,
    v2_request,
)
from tests.support import make_backend, store_captures


@pytest.fixture(scope="module")
def _two_contracts(tmp_path_factory, _trained_template):
    return build_two_contracts(_trained_template, tmp_path_factory.mktemp("two") / "ws")


@pytest.fixture
def ws(tmp_path, _two_contracts):
    target = tmp_path / "ws"
    shutil.copytree(_two_contracts, target)
    return target


def spawn(ws, *args):
    return subprocess.run([sys.executable, "-m", "mlops_kit", *map(str, args)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MLOPSKIT_WORKSPACE": str(ws)})


def test_automatic_promotion_refuses_a_breaking_version(tmp_path, _trained_template):
    """The issue's item 2: v2 (+contract) used to be promoted after training and every old
    client got 400. Now it stays registered, not champion, and the reason is reported and
    notified."""
    ws = tmp_path / "ws"
    shutil.copytree(_trained_template, ws)
    b = make_backend(ws)
    outcome = train_breaking_version(b)[-1]
    assert outcome["status"] == "registered" and outcome["promoted"] is False, outcome
    refusal = [r for r in outcome["reasons"] if "input contract" in r]
    assert refusal and "contract: added and required" in refusal[0], outcome["reasons"]
    assert b.ctx.registry.champion_version(MODEL) == 1
    assert b.ctx.registry.get_version(MODEL, 2)["contract"]["features"][-1]["name"] == "contract"
    note = b.ctx.notifier.messages()[-1]["message"]
    assert note["version"] == 2 and note["promoted"] is False
    assert any("contract: added and required" in r for r in note["reasons"])


def test_cli_refuses_breaking_promotion_and_challenger_then_audits_the_override(ws):
    r = spawn(ws, "registry", "promote", MODEL, 2, "--json")
    assert r.returncode == 1, (r.stdout, r.stderr)
    doc = json.loads(r.stdout)
    assert doc["code"] == "breaking_change" and doc["features"] == ["contract"]
    assert "contract: added and required" in doc["error"] and "Traceback" not in r.stderr
    assert "--allow-breaking" in r.stderr

    r = spawn(ws, "registry", "challenger", MODEL, 2, "--mode", "shadow", "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["features"] == ["contract"]

    r = spawn(ws, "registry", "promote", MODEL, 2, "--allow-breaking", "--json")
    assert r.returncode == 2 and json.loads(r.stdout)["field"] == "reason"

    shown = json.loads(spawn(ws, "registry", "show", MODEL, 2, "--json").stdout)
    assert shown["compatibility"]["compatible"] is False
    assert shown["compatibility"]["breaking_features"] == ["contract"]
    assert [f["name"] for f in shown["contract"]["features"]][-1] == "contract"
    assert shown["champion"] == 1 and shown["serving_health"]["requests"] == 0

    r = spawn(ws, "registry", "promote", MODEL, 2, "--allow-breaking", "--reason",
              "all clients moved to the v2 SDK", "--actor", "alice", "--json")
    assert r.returncode == 0, r.stderr
    last = json.loads(spawn(ws, "registry", "history", MODEL, "--json").stdout)[-1]
    assert last["to_version"] == 2 and last["actor"] == "alice"
    assert last["reason"] == "all clients moved to the v2 SDK" and last["allow_breaking"] is True
    assert any("contract" in b for b in last["breaking"])


@pytest.fixture
def server(ws):
    b = make_backend(ws)
    token = ensure_token(ws)
    srv = ServerThread(build_api(b, auth=True, workspace=ws)).start()
    try:
        yield srv, token, b
    finally:
        if not getattr(srv, "stopped", False):
            srv.stop()


def stop(srv) -> None:
    """Stop the server (its last capture flush writes the health counters too)."""
    srv.stop()
    srv.stopped = True


def call(srv, method, path, body, token):
    host, port = srv.server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                 headers={"content-type": "application/json",
                          "authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, json.loads(payload) if payload else None


def v2_body(record):
    return {"inputs": [{"name": k, "shape": [1], "datatype": "FP32" if isinstance(v, float | int)
                        else "BYTES", "data": [v]} for k, v in record.items()]}


def test_1000_requests_through_shadow_and_canary_never_differ_from_the_champion(server):
    """The issue's item 1: with v2 as shadow, then canary at 0.5, a mixed stream of v1
    callers, v2 callers and broken requests gets exactly the status the champion alone gives
    (asked through the pinned route /versions/1/). Shadow and canary skips are counted."""
    srv, token, b = server
    differ, seen = 0, {}
    for mode, rng in (("shadow", range(500)), ("canary", range(500, 1000))):
        set_challenger(b.ctx, mode, 0.5)
        for i in rng:
            body = {"instances": [mixed_request(i)]}
            status, out = call(srv, "POST", f"/v1/models/{MODEL}:predict", body, token)
            alone, _ = call(srv, "POST", f"/v1/models/{MODEL}/versions/1:predict", body, token)
            differ += status != alone
            seen[(mode, status)] = seen.get((mode, status), 0) + 1
            if status == 200:
                assert out["version"] == 1, out  # v2 never fits a request v1 accepts
    assert differ == 0
    assert seen == {("shadow", 200): 250, ("shadow", 400): 250,
                    ("canary", 200): 250, ("canary", 400): 250}, seen
    stop(srv)
    r = spawn(srv_ws(b), "registry", "show", MODEL, 2, "--json")
    events = json.loads(r.stdout)["serving_health"]["events"]
    assert events["shadow_skipped"] == 250  # v1 callers: no `contract` for the shadow
    assert 0 < events["canary_skipped"] < 250  # the half routed to the canary
    champion = json.loads(spawn(srv_ws(b), "registry", "show", MODEL, 1, "--json").stdout)
    health = champion["serving_health"]
    # both routes count against v1: 1,000 answers + 1,000 pinned
    assert health["2xx"] == 1000 and health["4xx"] == 1000 and health["5xx"] == 0
    assert health["latency_ms"]["p50"] is not None


def srv_ws(b):
    return b.settings.workspace


def test_pinned_versions_answer_on_both_protocols_and_are_captured_with_their_version(server):
    srv, token, b = server
    status, meta = call(srv, "GET", f"/v2/models/{MODEL}/versions/2", None, token)
    assert status == 200 and meta["versions"] == ["2"]
    assert "contract" in [i["name"] for i in meta["inputs"]]
    status, meta = call(srv, "GET", f"/v2/models/{MODEL}", None, token)
    assert meta["versions"] == ["1"]  # unpinned: the champion

    status, out = call(srv, "POST", f"/v1/models/{MODEL}/versions/2:predict",
                       {"instances": [v2_request(1)]}, token)
    assert status == 200 and out["version"] == 2
    status, out = call(srv, "POST", f"/v1/models/{MODEL}/versions/2:predict",
                       {"instances": [v1_request(1)]}, token)
    assert status == 400 and "contract" in out["error"]  # v2's own contract
    status, out = call(srv, "POST", f"/v2/models/{MODEL}/versions/2/infer",
                       v2_body(v2_request(2)), token)
    assert status == 200 and out["model_version"] == "2", out
    status, out = call(srv, "POST", f"/v2/models/{MODEL}/versions/1/infer",
                       v2_body(v1_request(2)), token)
    assert status == 200 and out["model_version"] == "1"
    status, out = call(srv, "POST", f"/v2/models/{MODEL}/versions/7/infer",
                       v2_body(v1_request(2)), token)
    assert status == 404 and "no version 7" in out["error"]
    status, _ = call(srv, "GET", f"/v2/models/{MODEL}/versions/2/ready", None, token)
    assert status == 200
    stop(srv)
    rows = store_captures(b.ctx.store, f"captures/{MODEL}/")
    assert sorted((r["version"], r["role"]) for r in rows) == [
        (1, "served"), (2, "served"), (2, "served")]


def test_pinned_versions_are_kept_warm_lru(ws):
    b = make_backend(ws, serving_warm_versions=1)
    svc = b.service(capture=False)
    assert svc.warm_versions == 1
    assert svc.predict(MODEL, [v1_request(1)], version=1)["version"] == 1
    assert svc.predict(MODEL, [v2_request(1)], version=2)["version"] == 2
    assert svc.warm() == [(MODEL, 2)]
    assert svc.predict(MODEL, [v1_request(1)], version=1)["version"] == 1
    assert svc.warm() == [(MODEL, 1)]
