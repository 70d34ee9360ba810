"""Serving in depth: canary and shadow routing, refresh of a warm service, integrity refusal,
approval-gated promotion — on the real local backend with real ONNX models."""

from __future__ import annotations

import pytest

from mlops_kit.core.serving.service import canary_share
from mlops_kit.core.synthetic import churn_csv
from mlops_kit.errors import IntegrityError
from mlops_kit.local.worker import put_object, run_once
from tests.support import FAST_SPEC, apply_spec, feature_records, store_captures


@pytest.fixture
def two_versions(trained):
    """churn v1 champion + v2 registered but held for approval."""
    apply_spec(trained, {**FAST_SPEC, "promotion": {"metric": "roc_auc",
                                                    "require_approval": True}})
    put_object(trained, "datasets/churn/second.csv", churn_csv(900, seed=31))
    out = run_once(trained)[-1]
    assert out["status"] == "registered" and out["promoted"] is False
    assert "awaiting manual approval" in out["reasons"]
    return trained


class Ticker:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_canary_split_is_deterministic_and_within_tolerance(two_versions):
    reg = two_versions.ctx.registry
    reg.set_alias("churn", "challenger", 2, actor="t", reason="canary",
                  extra={"mode": "canary", "weight": 0.2})
    svc = two_versions.service(capture=False)
    rec = feature_records(1)
    versions = [svc.predict("churn", rec, request_id=f"req-{i}")["version"] for i in range(2000)]
    share = versions.count(2) / len(versions)
    assert 0.17 < share < 0.23, share
    # the same request id always goes the same way
    again = [svc.predict("churn", rec, request_id=f"req-{i}")["version"] for i in range(50)]
    assert again == versions[:50]
    assert all((canary_share(f"req-{i}") < 0.2) == (v == 2) for i, v in enumerate(versions))


def test_shadow_scores_every_request_and_only_champion_answers(two_versions):
    reg = two_versions.ctx.registry
    reg.set_alias("churn", "challenger", 2, actor="t", reason="shadow",
                  extra={"mode": "shadow", "weight": 1.0})
    svc = two_versions.service()
    for i in range(10):
        out = svc.predict("churn", feature_records(2, seed=i), request_id=f"r{i}")
        assert out["version"] == 1 and "role" not in out
    svc.capture.flush()
    rows = store_captures(two_versions.ctx.store, "captures/churn/")
    served = [r for r in rows if r["role"] == "served"]
    shadow = [r for r in rows if r["role"] == "shadow"]
    assert len(served) == len(shadow) == 20
    assert {r["version"] for r in served} == {1} and {r["version"] for r in shadow} == {2}
    assert sorted(r["id"] for r in served) == sorted(r["id"] for r in shadow)


def test_warm_service_picks_up_new_champion_after_interval(two_versions):
    reg = two_versions.ctx.registry
    tick = Ticker()
    svc = two_versions.service(capture=False)
    svc.refresh_seconds = 30
    svc._monotonic = tick
    rec = feature_records(1)
    assert svc.predict("churn", rec)["version"] == 1
    reg.update_version("churn", 2, {"approved": True, "approved_by": "alice"}, "alice")
    reg.promote("churn", 2, actor="alice", reason="approved")
    tick.t = 10
    assert svc.predict("churn", rec)["version"] == 1  # cached within the interval
    tick.t = 31
    assert svc.predict("churn", rec)["version"] == 2  # refreshed, no restart


@pytest.mark.parametrize("artifact", ["model.ort", "model.onnx"])
def test_tampered_artifact_is_refused_previous_keeps_serving(two_versions, artifact):
    reg = two_versions.ctx.registry
    store = two_versions.ctx.store
    tick = Ticker()
    svc = two_versions.service(capture=False)
    svc._monotonic = tick
    svc.refresh_seconds = 1
    assert svc.predict("churn", feature_records(1))["version"] == 1
    if artifact == "model.onnx":  # the one served when model.ort is gone (its fallback)
        store.delete("models/churn/000002/model.ort")
    key = f"models/churn/000002/{artifact}"
    store.put(key, store.get(key)[:-100])  # truncated
    reg.update_version("churn", 2, {"approved": True}, "t")
    reg.promote("churn", 2, actor="t", reason="x")
    tick.t = 5
    out = svc.predict("churn", feature_records(1))
    assert out["version"] == 1  # the previous champion keeps serving
    alerts = [n for n in two_versions.ctx.notifier.messages()
              if n["message"].get("event") == "integrity_error"]
    assert alerts and alerts[-1]["message"]["version"] == 2
    with pytest.raises(IntegrityError):
        two_versions.service(capture=False).load_version("churn", 2)


def test_approval_then_promotion_through_registry(two_versions):
    reg = two_versions.ctx.registry
    assert reg.champion_version("churn") == 1
    record = reg.get_version("churn", 2)
    assert record["requires_approval"] and not record["approved"]
    reg.update_version("churn", 2, {"approved": True, "approved_by": "bob"}, "bob")
    reg.promote("churn", 2, actor="bob", reason="approved")
    assert reg.champion_version("churn") == 2
    history = reg.history("churn")
    assert [h["action"] for h in history] == ["promote", "annotate", "promote"]
    assert history[-1]["actor"] == "bob"
