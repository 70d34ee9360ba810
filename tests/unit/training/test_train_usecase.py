"""The whole lifecycle on the local backend: real files, SQLite, sklearn, skl2onnx, onnxruntime."""

from __future__ import annotations

import json

import pytest

from mlops_kit.core.synthetic import broken_churn_csv, churn_csv
from mlops_kit.core.training.usecase import train_job
from mlops_kit.local.worker import put_object, run_once, upload
from tests.support import FAST_SPEC, apply_spec, feature_records, make_backend


def test_upload_validates_trains_registers_and_promotes(backend, tmp_path):
    apply_spec(backend, FAST_SPEC)
    f = tmp_path / "churn.csv"
    f.write_bytes(churn_csv(1200, seed=1))
    upload(backend, f, "churn")
    results = run_once(backend)
    statuses = [r["status"] for r in results]
    assert statuses == ["validated", "registered"]
    trained = results[1]
    assert trained["promoted"] is True and trained["version"] == 1
    assert trained["parity"]["passed"] and trained["parity"]["max_abs_diff"] < 1e-4
    assert 0.6 < trained["metrics"]["roc_auc"] <= 1.0
    reg = backend.ctx.registry
    record = reg.get_version("churn", 1)
    store = backend.ctx.store
    onnx = store.get(record["artifact_key"])
    import hashlib

    assert hashlib.sha256(onnx).hexdigest() == record["sha256"]
    lineage = record["lineage"]
    assert lineage["dataset_key"] == "datasets/churn/churn.csv"
    assert lineage["rows"] == 1200 and len(lineage["dataset_sha256"]) == 64
    assert lineage["spec_hash"] and lineage["package_version"]
    for name in ("spec.json", "metrics.json", "profile.json", "card.json"):
        assert store.exists(f"models/churn/000001/{name}")
    profile = json.loads(store.get("models/churn/000001/profile.json"))
    assert set(profile["features"]) == {f["name"] for f in FAST_SPEC["features"]}
    assert "predictions" in profile
    out = backend.service(capture=False).predict("churn", feature_records(3))
    assert len(out["predictions"]) == 3 and out["version"] == 1


def test_duplicate_delivery_gives_one_version(backend, tmp_path):
    apply_spec(backend, FAST_SPEC)
    f = tmp_path / "churn.csv"
    f.write_bytes(churn_csv(800, seed=2))
    info = upload(backend, f, "churn")
    # the same object-created event delivered twice (at-least-once)
    backend.validate_queue.send({"key": info["key"], "etag": info["etag"]})
    results = run_once(backend)
    assert [r["status"] for r in results].count("registered") == 1
    assert any(r.get("duplicate") for r in results)
    assert len(backend.ctx.registry.list_versions("churn")) == 1


def test_same_data_uploaded_under_two_names_trains_once(backend, tmp_path):
    apply_spec(backend, FAST_SPEC)
    data = churn_csv(800, seed=2)
    put_object(backend, "datasets/churn/a.csv", data)
    put_object(backend, "datasets/churn/b.csv", data)
    results = run_once(backend)
    assert [r["status"] for r in results].count("registered") == 1
    # the second upload is said to be unchanged, with the version it already is (issue 23)
    [same] = [r for r in results if r["status"] == "unchanged"]
    assert same["version"] == 1 and same["dataset_key"] == "datasets/churn/b.csv"


def test_bad_dataset_is_quarantined_with_report_and_original_kept(backend, tmp_path):
    apply_spec(backend, FAST_SPEC)
    put_object(backend, "datasets/churn/bad.csv", broken_churn_csv())
    results = run_once(backend)
    assert [r["status"] for r in results] == ["quarantined"]
    store = backend.ctx.store
    assert store.exists("datasets/churn/bad.csv")
    assert store.get("quarantine/churn/bad.csv") == store.get("datasets/churn/bad.csv")
    report = json.loads(store.get("quarantine/churn/bad.csv.report.json"))
    failed = {(r["rule"], r["column"]): r for r in report["rules"] if not r["passed"]}
    assert failed[("range", "age")]["examples"][0] == {"row": 4, "value": "-4"}
    assert ("category", "region") in failed and ("type", "monthly_charges") in failed
    assert backend.ctx.registry.list_versions("churn") == []
    assert backend.ctx.train_queue.depth() == 0
    notes = backend.ctx.notifier.messages()
    assert notes[-1]["message"]["event"] == "quarantined"


def test_missing_spec_is_quarantined_at_once_never_retried(backend):
    put_object(backend, "datasets/nospec/a.csv", churn_csv(300))
    results = run_once(backend)
    assert [r["status"] for r in results] == ["quarantined"]
    assert "no spec for model 'nospec'" in results[0]["summary"]
    report = json.loads(backend.ctx.store.get("quarantine/nospec/a.csv.report.json"))
    assert [(r["rule"], r["passed"]) for r in report["rules"]] == [("spec", False)]
    assert backend.validate_queue.dead_letters() == [] and backend.validate_queue.depth() == 0
    assert backend.ctx.notifier.messages()[-1]["message"]["event"] == "quarantined"


def test_worse_model_is_registered_but_not_promoted(trained, tmp_path):
    spec = {**FAST_SPEC, "promotion": {"metric": "roc_auc", "min_gain": 0.05}}
    apply_spec(trained, spec)
    put_object(trained, "datasets/churn/more.csv", churn_csv(900, seed=8))
    results = run_once(trained)
    out = results[-1]
    assert out["status"] == "registered" and out["promoted"] is False
    assert any("gain" in r for r in out["reasons"])
    assert trained.ctx.registry.champion_version("churn") == 1
    record = trained.ctx.registry.get_version("churn", 2)
    assert record["gates"]["gain"]["passed"] is False


def test_minimum_metric_gate(backend, tmp_path):
    apply_spec(backend, {**FAST_SPEC, "promotion": {"metric": "roc_auc", "minimum": 0.999}})
    put_object(backend, "datasets/churn/a.csv", churn_csv(800, seed=4))
    out = run_once(backend)[-1]
    assert out["status"] == "registered" and not out["promoted"]
    assert "minimum" in out["reasons"][0]
    assert backend.ctx.registry.champion_version("churn") is None


def test_parity_failure_rejects_version(backend, monkeypatch):
    from mlops_kit.core.training import usecase
    real = usecase.parity_check

    def strict(spec, pipeline, onnx_bytes, X, tolerance=None, **kw):
        return real(spec, pipeline, onnx_bytes, X, 1e-15, **kw)

    monkeypatch.setattr(usecase, "parity_check", strict)
    apply_spec(backend, {**FAST_SPEC, "estimator": {"kind": "random_forest",
                                                    "params": {"n_estimators": 5}}})
    put_object(backend, "datasets/churn/a.csv", churn_csv(600, seed=4))
    out = run_once(backend)[-1]
    assert out["status"] == "rejected" and not out["promoted"]
    # a version that failed the gate ships no optimised graph either
    assert backend.ctx.registry.get_version("churn", out["version"])["ort_sha256"] is None
    assert not backend.ctx.store.exists("models/churn/000001/model.ort")
    assert "parity" in out["reasons"][0]
    assert backend.ctx.registry.champion_version("churn") is None


def test_crash_after_artifact_before_registry_then_retry(backend, monkeypatch):
    """A crash between artifact write and registry write leaves a pending version that is not
    served; the retry completes the same version."""
    from mlops_kit.core.registry import model_registry as registry_mod
    apply_spec(backend, FAST_SPEC)
    put_object(backend, "datasets/churn/a.csv", churn_csv(700, seed=4))
    run_once_validate = backend.validate_queue.receive(1)[0]
    from mlops_kit.core.router import on_object_created

    on_object_created(backend.ctx, run_once_validate.body["key"], run_once_validate.body["etag"])
    backend.validate_queue.ack(run_once_validate)
    job = backend.ctx.train_queue.receive(1)[0]
    real = registry_mod.Registry.complete_version

    def crash(self, *a, **k):
        raise RuntimeError("killed")

    monkeypatch.setattr(registry_mod.Registry, "complete_version", crash)
    with pytest.raises(RuntimeError):
        train_job(backend.ctx, job.body)
    assert backend.ctx.store.exists("models/churn/000001/model.onnx")
    assert backend.ctx.registry.get_version("churn", 1)["status"] == "pending"
    assert backend.ctx.registry.champion_version("churn") is None
    monkeypatch.setattr(registry_mod.Registry, "complete_version", real)
    out = train_job(backend.ctx, job.body)
    assert out["version"] == 1 and out["status"] == "registered" and out["promoted"]
    assert len(backend.ctx.registry.list_versions("churn")) == 1


def test_state_survives_restart(trained):
    again = make_backend(trained.settings.workspace)
    assert again.ctx.registry.champion_version("churn") == 1
    out = again.service(capture=False).predict("churn", feature_records(1))
    assert out["version"] == 1


def test_parquet_dataset_trains(backend):
    import io

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    apply_spec(backend, FAST_SPEC)
    table = pacsv.read_csv(io.BytesIO(churn_csv(700, seed=9)))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    put_object(backend, "datasets/churn/a.parquet", buf.getvalue())
    results = run_once(backend)
    assert [r["status"] for r in results] == ["validated", "registered"], results
    assert results[1]["metrics"]["roc_auc"] > 0.6
    assert backend.ctx.registry.get_version("churn", 1)["lineage"]["dataset_key"] \
        == "datasets/churn/a.parquet"
