"""Bad datasets end to end through the lifecycle on the local backend: each one gives a
quarantine copy and a report naming the failed rules, never a crash, never a model; the
original stays byte-for-byte at its upload key. Awkward but valid files (BOM, CRLF, quoted
delimiters) are read correctly and train."""

from __future__ import annotations

import json

import pytest

from mlops_kit.local.worker import put_object, run_once
from tests.reliability.datasets import BAD, VALID
from tests.support import FAST_SPEC, apply_spec

SMALL_SPEC = {**FAST_SPEC, "validation": {**FAST_SPEC.get("validation", {}), "min_rows": 100}}


def check_quarantined(backend, filename: str, data: bytes, rules: set[str] | None) -> dict:
    key = f"datasets/churn/{filename}"
    results = run_once(backend)
    assert [r["status"] for r in results] == ["quarantined"], results
    out = results[0]
    store = backend.ctx.store
    assert store.get(key) == data  # the original is never moved or rewritten
    assert out["quarantine_key"] == f"quarantine/churn/{filename}"
    assert store.get(out["quarantine_key"]) == data
    report = json.loads(store.get(out["quarantine_report_key"]))
    assert report["passed"] is False and report["dataset_key"] == key
    assert report["summary"].startswith("failed")
    failed = {r["rule"] for r in report["rules"] if not r["passed"]}
    assert failed, report
    if rules is not None:
        assert rules <= failed, (rules, failed)
    for r in report["rules"]:
        assert r["message"] and "Traceback" not in r["message"]
    assert json.loads(store.get(out["report_key"]))["passed"] is False
    assert backend.ctx.registry.list_versions("churn") == []
    assert backend.ctx.train_queue.depth() == 0
    assert backend.validate_queue.depth() == 0 and backend.validate_queue.dead_letters() == []
    note = backend.ctx.notifier.messages()[-1]["message"]
    assert note["event"] == "quarantined" and note["dataset_key"] == key
    return report


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_dataset_is_quarantined_with_a_report(backend, case):
    filename, data, rules = BAD[case]
    apply_spec(backend, SMALL_SPEC)
    put_object(backend, f"datasets/churn/{filename}", data)
    check_quarantined(backend, filename, data, rules)


@pytest.mark.parametrize("case", list(VALID), ids=list(VALID))
def test_awkward_but_valid_dataset_is_read_correctly(backend, case):
    filename, data = VALID[case]
    apply_spec(backend, SMALL_SPEC)
    put_object(backend, f"datasets/churn/{filename}", data)
    results = run_once(backend)
    assert [r["status"] for r in results] == ["validated", "registered"], results
    assert results[0]["rows"] == 300
    report = json.loads(backend.ctx.store.get(results[0]["report_key"]))
    assert "\ufeffcustomer_id" not in report["columns"] and "customer_id" in report["columns"]
    assert all(r["passed"] for r in report["rules"])
    assert backend.ctx.store.exists(f"datasets/churn/{filename}")


def test_same_bad_upload_delivered_twice_gives_one_quarantine(backend):
    filename, data, _ = BAD["ragged rows"]
    apply_spec(backend, SMALL_SPEC)
    info = put_object(backend, f"datasets/churn/{filename}", data)
    backend.validate_queue.send({"key": info["key"], "etag": info["etag"]})
    results = run_once(backend)
    assert [r["status"] for r in results] == ["quarantined", "quarantined"]
    assert [bool(r.get("duplicate")) for r in results] == [False, True]
    quarantined = [n for n in backend.ctx.notifier.messages()
                   if n["message"]["event"] == "quarantined"]
    assert len(quarantined) == 1
