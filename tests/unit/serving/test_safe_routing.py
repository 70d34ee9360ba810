"""Issue 23 items 2 and 8 in the service and the HttpApi: a shadow or a canary never changes
the answer; each request is counted per model and version; a 5xx rate over the spec's
threshold raises an alert. The real local backend, real ONNX models (churn v1 + v2 with the
required `contract`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mlops_kit.bootstrap import local_backend
from mlops_kit.clock import FixedClock
from mlops_kit.core.monitoring.usecase import run_monitor
from mlops_kit.core.serving.health import (
    ServingHealth,
    bucket,
    bucket_upper_ms,
    over_threshold,
    read_health,
)
from mlops_kit.core.serving.http_api import HttpApi
from mlops_kit.core.serving.predictor import Predictor
from tests.safe_change import MODEL, build_two_contracts, set_challenger, v1_request, v2_request
from tests.support import make_backend, store_captures

T0 = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def _two(tmp_path_factory, _trained_template):
    return build_two_contracts(_trained_template, tmp_path_factory.mktemp("two") / "ws")


@pytest.fixture
def two(tmp_path, _two):
    import shutil

    shutil.copytree(_two, tmp_path / "ws")
    return make_backend(tmp_path / "ws")


def predict(api, body, path=f"/v1/models/{MODEL}:predict", rid=None):
    resp = api.handle("POST", path, {"x-request-id": rid} if rid else {},
                      json.dumps(body).encode())
    return resp.status, resp.body


def test_a_shadow_that_crashes_is_counted_and_logged_never_returned(two, monkeypatch, caplog):
    """The issue's KeyError: a shadow failing inside onnxruntime (or anywhere) after the
    answer is decided."""
    set_challenger(two.ctx, "shadow")
    api = HttpApi(two.service())
    real = Predictor.run_arrays

    def broken(self, feed):
        if self.version == 2:
            raise KeyError("contract")
        return real(self, feed)

    monkeypatch.setattr(Predictor, "run_arrays", broken)
    statuses = [predict(api, {"instances": [v1_request(i)]})[0] for i in range(20)]
    assert statuses == [200] * 20
    counts = api.service.health.snapshot()[MODEL]
    assert counts["1"]["2xx"] == 20 and counts["1"]["5xx"] == 0
    # v1 callers never send `contract`: the shadow is skipped, counted, never run
    assert counts["2"]["events"] == {"shadow_skipped": 20}
    # a request the shadow accepts (v1 refuses it, so this drives the shadow directly):
    # its crash is counted and logged, and _shadow never raises
    svc = api.service
    with caplog.at_level("WARNING", logger="mlops_kit.serving"):
        svc._shadow(MODEL, svc.pinned(MODEL, 2),
                    lambda p, ignore: p.inputs_from_request([v2_request(1)], ignore), "r1")
    assert svc.health.snapshot()[MODEL]["2"]["events"]["shadow_failed"] == 1
    assert "shadow model v2 failed: KeyError" in caplog.text


def test_a_canary_answers_only_requests_its_contract_accepts(two):
    two.ctx.registry.set_alias(MODEL, "challenger", 2, actor="t", reason="canary",
                               extra={"mode": "canary", "weight": 1.0}, allow_breaking=True)
    api = HttpApi(two.service(capture=False))
    # weight 1.0: every request is routed to v2, which refuses v1's callers' requests
    for i in range(30):
        status, body = predict(api, {"instances": [v1_request(i)]})
        assert status == 200 and body["version"] == 1 and "role" not in body
    status, body = predict(api, {"instances": [v2_request(1)]})
    assert status == 400 and "contract" in body["error"]  # the champion's answer
    events = api.service.health.snapshot()[MODEL]["2"]["events"]
    assert events == {"canary_skipped": 30}


def test_a_failing_canary_falls_back_to_the_champion(two, monkeypatch):
    """A challenger whose contract fits (same spec, v1 itself pinned as challenger is not
    routed): here v2 accepts the request but crashes while scoring."""
    two.ctx.registry.set_alias(MODEL, "challenger", 2, actor="t", reason="canary",
                               extra={"mode": "canary", "weight": 1.0}, allow_breaking=True)
    svc = two.service(capture=False)
    real = Predictor.run_arrays
    monkeypatch.setattr(Predictor, "run_arrays", lambda self, feed: (_ for _ in ()).throw(
        RuntimeError("boom")) if self.version == 2 else real(self, feed))
    # a request both contracts accept: v1's features + contract, under ignore_unknown
    p2 = svc.pinned(MODEL, 2)
    feed = svc._answer(MODEL, svc.pinned(MODEL, 1), p2,
                       lambda p, ignore: p.inputs_from_request(
                           [v2_request(3) if p.version == 2 else v1_request(3)], ignore),
                       frozenset(), "rid", True)
    assert feed.predictor.version == 1 and feed.challenger is False
    counts = svc.health.snapshot()[MODEL]["2"]
    assert counts["events"] == {"canary_failed": 1} and counts["5xx"] == 1


def test_requests_are_counted_per_version_and_status(two):
    api = HttpApi(two.service(capture=True))
    for i in range(5):
        assert predict(api, {"instances": [v1_request(i)]})[0] == 200
    assert predict(api, {"instances": [v2_request(1)]})[0] == 400  # v1 refuses `contract`
    assert predict(api, {"instances": [v2_request(1)]},
                   f"/v1/models/{MODEL}/versions/2:predict")[0] == 200
    assert predict(api, {"nope": 1})[0] == 400  # before routing: counted as unrouted
    assert predict(api, {"instances": [v1_request(1)]}, "/v1/models/nosuch:predict")[0] == 404
    counts = api.service.health.snapshot()
    assert set(counts) == {MODEL}  # a model that does not exist is not counted
    assert {v: (c["2xx"], c["4xx"], c["5xx"]) for v, c in counts[MODEL].items()} == {
        "1": (5, 1, 0), "2": (1, 0, 0), "unrouted": (0, 1, 0)}
    api.service.capture.flush()
    now = two.ctx.clock.now()
    health = read_health(two.ctx.store, MODEL, now - timedelta(hours=1), now)
    assert health["objects"] == 1 and health["versions"]["1"]["requests"] == 6
    assert health["versions"]["1"]["latency_ms"]["p99"] is not None
    # the counters never mix into the captures
    rows = store_captures(two.ctx.store, f"captures/{MODEL}/")
    assert sorted(r["version"] for r in rows) == [1, 1, 1, 1, 1, 2]


def test_latency_percentiles_merge_across_instances(backend):
    clock = FixedClock(T0)
    a, b = ServingHealth(backend.ctx.store, clock), ServingHealth(backend.ctx.store, clock)
    for ms in range(1, 101):  # 1..100 ms over two instances
        (a if ms % 2 else b).record("m", 3, 200, float(ms))
    a.record("m", 3, 503, 5.0)
    assert a.flush() == 1 and b.flush() == 1
    h = read_health(backend.ctx.store, "m", T0 - timedelta(hours=2), T0)
    s = h["versions"]["3"]
    assert (s["requests"], s["2xx"], s["5xx"]) == (101, 100, 1)
    for q, true in (("p50", 50), ("p95", 95), ("p99", 99)):
        assert true <= s["latency_ms"][q] <= true * 1.13, (q, s["latency_ms"])
    assert bucket_upper_ms(bucket(7.0)) >= 7.0 > bucket_upper_ms(bucket(7.0) - 1)
    assert over_threshold(h, 3, 0.001) and over_threshold(h, 3, 0.05) is None


def test_a_5xx_rate_over_the_spec_threshold_raises_an_alert(trained):
    mon = local_backend(trained.settings, clock=FixedClock(T0))
    health = ServingHealth(mon.ctx.store, mon.ctx.clock)
    for i in range(40):
        health.record(MODEL, 1, 500 if i % 4 == 0 else 200, 3.0)  # 25% 5xx
    health.flush()
    report = run_monitor(mon.ctx, MODEL)
    assert report["serving_health"]["versions"]["1"]["5xx"] == 10
    alert = [a for a in report["alerts"] if a["kind"] == "serving_5xx"]
    assert alert and "10 of 40 requests answered 5xx" in alert[0]["reasons"][0]
    assert "monitoring.max_5xx_rate 1.0%" in report["summary"]
    note = mon.ctx.notifier.messages()[-1]
    assert note["subject"].startswith("mlops-kit ALERT: serving errors on churn v1")
    assert note["message"]["serving_5xx"] == alert[0]["reasons"]
    html = mon.ctx.store.get(report["html_key"]).decode()
    assert "<h2>Serving health</h2>" in html and "25.0%" in html


def test_the_console_shows_the_contract_its_compatibility_and_the_health(two):
    from mlops_kit.console.data import ConsoleData
    from mlops_kit.console.version_page import version_page

    api = HttpApi(two.service(capture=True))
    for i in range(3):
        predict(api, {"instances": [v2_request(i)]}, f"/v1/models/{MODEL}/versions/2:predict")
    api.service.capture.flush()
    data = ConsoleData(two.ctx.store, two.ctx.registry)
    page = str(version_page(data.version(MODEL, 2), root="/ui/", signed_in=True))
    assert "breaks the champion" in page and 'id="breaking"' in page
    assert "contract: added and required" in page
    assert '<table id="contract">' in page and "monthly, yearly" in page
    assert 'id="health"' in page and "3 / 0 / 0" in page
    champion = str(version_page(data.version(MODEL, 1), root="/ui/", signed_in=True))
    assert "this version is the champion" in champion


def test_a_dropped_feature_is_ignored_when_old_callers_still_send_it(trained):
    """B may drop a feature: compatible, and the new champion ignores it when sent (V1 and
    V2), so v1's callers keep working after the promotion."""
    from mlops_kit.core.synthetic import churn_csv
    from mlops_kit.local.worker import put_object, run_once
    from tests.support import FAST_SPEC, apply_spec

    spec = {**FAST_SPEC, "features": [f for f in FAST_SPEC["features"]
                                      if f["name"] != "payment"]}
    apply_spec(trained, spec)
    put_object(trained, "datasets/churn/no-payment.csv", churn_csv(900, seed=5))
    out = run_once(trained)[-1]
    assert out["status"] == "registered", out
    reg = trained.ctx.registry
    if not out["promoted"]:  # the gain gate may say no; the contract does not
        reg.promote(MODEL, 2, actor="t", reason="drop payment")
    assert reg.get_alias(MODEL)["ignored_fields"] == ["payment"]
    api = HttpApi(trained.service(capture=False))
    status, body = predict(api, {"instances": [v1_request(1)]})  # still sends `payment`
    assert status == 200 and body["version"] == 2, body
    v2 = {"inputs": [{"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str)
                      else "FP32", "data": [v]} for k, v in v1_request(1).items()
                     if v is not None]}
    resp = api.handle("POST", f"/v2/models/{MODEL}/infer", {}, json.dumps(v2).encode())
    assert resp.status == 200 and resp.body["model_version"] == "2", resp.body
    status, body = predict(api, {"instances": [{**v1_request(1), "paymnt": "card"}]})
    assert status == 400 and "paymnt" in body["error"]  # other unknown fields: still 400
