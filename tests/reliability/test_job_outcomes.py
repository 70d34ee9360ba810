"""Issue 12, the job-outcome half: every numbered reproduction gives a clear, final outcome.

Each test names the item it reproduces. All run on the real local backend (files, SQLite
table and queues, sklearn, skl2onnx, onnxruntime) through upload -> worker."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import yaml

from mlops_kit.bootstrap import local_backend
from mlops_kit.clock import FixedClock
from mlops_kit.core.monitoring.usecase import monitor_all, run_monitor
from mlops_kit.core.registry import Registry
from mlops_kit.core.spec import parse_spec
from mlops_kit.core.training.estimators import check_params
from mlops_kit.errors import SpecError, TransientError
from mlops_kit.local.worker import put_object, run_once
from tests.reliability.faults import Flaky, model_artifact
from tests.reliability.job_cases import churn_cols, outcome, to_csv
from tests.support import FAST_SPEC, apply_spec, captured_rows, feature_records

NULLABLE_SPEC = {**FAST_SPEC, "features": [
    {**f, "nullable": True} for f in FAST_SPEC["features"]]}  # churn data has nulls


def upload(backend, name: str, data: bytes, model: str = "churn") -> dict:
    put_object(backend, f"datasets/{model}/{name}", data)
    return outcome(backend, model, run_once(backend))


def notes(backend) -> list[dict]:
    return [n["message"] for n in backend.ctx.notifier.messages()]


# -- item 1: one bad labels file stops all monitoring ------------------------------------------
@pytest.mark.parametrize(("name", "data", "reason"), [
    ("latin1.csv", b"request_id,churned,note\nabc,1,caf\xe9\n", "not valid UTF-8"),
    ("binary.csv", bytes(range(256)) * 4, "not valid UTF-8"),
    ("no-target.csv", b"request_id,label\nabc,1\n", "'churned'"),
], ids=["latin1", "binary", "missing-target"])
def test_item1_a_bad_labels_file_is_quarantined_and_monitoring_goes_on(trained, name, data,
                                                                        reason):
    put_object(trained, f"labels/churn/{name}", data)
    [out] = run_once(trained)
    assert out["status"] == "quarantined" and out["kind"] == "labels" and reason in out["reason"]
    store = trained.ctx.store
    assert out["quarantine_key"] == f"quarantine/churn/labels/{name}"
    assert store.get(out["quarantine_key"]) == data == store.get(f"labels/churn/{name}")
    report = json.loads(store.get(out["quarantine_report_key"]))
    assert report["passed"] is False and reason in report["rules"][0]["message"]
    assert notes(trained)[-1]["event"] == "labels_quarantined"
    assert trained.validate_queue.dead_letters() == []
    # a good labels file beside it still counts; monitoring reports the bad one and goes on
    put_object(trained, "labels/churn/good.csv", b"request_id,churned\nr1,1\nr2,0\n")
    assert [r["status"] for r in run_once(trained)] == ["labels_received"]
    report = run_monitor(trained.ctx, "churn")
    labels = report["quality"]["labels"]
    assert labels["labels"] == 2 and labels["files"] == 2
    assert [s["key"] for s in labels["skipped_files"]] == [f"labels/churn/{name}"]


def test_item1_one_failing_model_never_stops_the_scheduled_monitor(trained):
    """Another model whose champion cannot be monitored (its artifacts are gone) is reported
    in the run's JSON and in one alert; churn is monitored as usual."""
    reg = trained.ctx.registry
    res = reg.reserve_version("broken", "run-1", {})
    reg.complete_version("broken", res.version, {"status": "registered"})
    reg.promote("broken", res.version, actor="test", reason="test")
    put_object(trained, "labels/churn/latin1.csv", b"request_id,churned\nabc,caf\xe9\n")
    run_once(trained)
    out = monitor_all(trained.ctx)
    assert out["status"] == "partial"
    assert [r["model"] for r in out["reports"]] == ["churn"]
    assert out["reports"][0]["report_key"].startswith("reports/churn/monitoring/")
    [error] = out["errors"]
    assert error["model"] == "broken" and error["error_type"] == "NotFound"
    alert = [n for n in notes(trained) if n.get("event") == "monitoring_failed"]
    assert alert and alert[-1]["errors"] == out["errors"] and alert[-1]["monitored"] == ["churn"]


# -- item 2: failures that can never succeed are final, never retried --------------------------
@pytest.mark.parametrize(("params", "name"), [
    ({"n_estimators": -3}, "n_estimators"), ({"n_trees": 10}, "n_trees"),
    ({"max_depth": "deep"}, "max_depth")])
def test_item2_bad_estimator_params_fail_the_version_at_once(backend, params, name):
    spec = {**NULLABLE_SPEC, "estimator": {"kind": "random_forest", "params": params}}
    with pytest.raises(SpecError) as door:  # `spec check` / `spec apply` refuse it first
        check_params(parse_spec(spec))
    assert door.value.field == f"estimator.params.{name}"
    apply_spec(backend, spec)  # written straight to storage, past the door
    out = upload(backend, "a.csv", to_csv(churn_cols()))
    assert out["status"] == "failed" and out["final"] is True
    assert out["record"]["reasons"][0].startswith(f"estimator.params.{name}:")
    assert out["record"]["field"] == f"estimator.params.{name}"
    note = notes(backend)[-1]
    assert note["event"] == "trained" and note["status"] == "failed"


def test_item2_a_third_class_in_a_binary_task_is_quarantined(backend):
    apply_spec(backend, NULLABLE_SPEC)
    cols = churn_cols()
    cols["churned"] = [2 if i % 7 == 0 else y for i, y in enumerate(cols["churned"])]
    out = upload(backend, "three.csv", to_csv(cols))
    assert out["status"] == "quarantined"
    failed = {(r["rule"], r["column"]): r for r in out["report"]["rules"] if not r["passed"]}
    rule = failed[("classes", "churned")]
    assert "binary_classification needs exactly 2 classes, found 3" in rule["message"]


@pytest.mark.parametrize("token", ["NaN", "NA", "nan", "null", "N/A"])
def test_item2_missing_tokens_in_a_nullable_numeric_column_train(backend, token):
    """Validation and training read through one reader with one meaning of missing: what
    validation passes, training trains."""
    apply_spec(backend, NULLABLE_SPEC)
    cols = churn_cols()
    cols["support_calls"] = [token if i % 9 == 0 else v for i, v in
                             enumerate(cols["support_calls"])]
    out = upload(backend, "tokens.csv", to_csv(cols))
    assert out["status"] == "registered", out


def test_item2_missing_tokens_in_a_non_nullable_column_are_quarantined(backend):
    spec = {**NULLABLE_SPEC, "features": [{**f, "nullable": f["name"] != "age"}
                                          for f in NULLABLE_SPEC["features"]]}
    apply_spec(backend, spec)
    cols = churn_cols()
    cols["age"] = ["NA" if i % 50 == 0 else v for i, v in enumerate(cols["age"])]
    out = upload(backend, "na-age.csv", to_csv(cols))
    assert out["status"] == "quarantined"
    assert ("nullable", "age") in {(r["rule"], r["column"]) for r in out["report"]["rules"]
                                   if not r["passed"]}


def test_item2_an_upload_for_a_model_with_no_spec_is_quarantined(backend):
    out = upload(backend, "a.csv", to_csv(churn_cols()), model="nospec")
    assert out["status"] == "quarantined"
    [rule] = out["report"]["rules"]
    assert rule["rule"] == "spec" and "no spec for model 'nospec'" in rule["message"]


def test_item2_a_json_dataset_is_quarantined(backend):
    apply_spec(backend, NULLABLE_SPEC)
    out = upload(backend, "rows.json", json.dumps([{"age": 30}]).encode())
    assert out["status"] == "quarantined"
    [rule] = out["report"]["rules"]
    assert rule["rule"] == "format" and "use a .csv, .parquet or .pq file" in rule["message"]


def test_item2_a_parquet_file_with_pandas_category_columns_trains(backend):
    apply_spec(backend, NULLABLE_SPEC)
    df = pd.DataFrame(churn_cols())
    for c in ("plan", "region", "payment"):
        df[c] = df[c].astype("category")
    buf = io.BytesIO()
    df.to_parquet(buf)
    out = upload(backend, "cats.parquet", buf.getvalue())
    assert out["status"] == "registered", out


# -- item 3: feature names ONNX cannot carry ---------------------------------------------------
def test_item3_breast_cancer_raw_column_names_train_and_serve(backend):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame  # "mean radius", "worst concave points"...
    features = [c for c in frame.columns if c != "target"]
    assert any(" " in f for f in features)
    spec = {"name": "cancer", "task": "binary_classification", "target": "target",
            "features": [{"name": f, "type": "numeric", "nullable": True} for f in features],
            "estimator": {"kind": "logistic_regression", "params": {}}}
    apply_spec(backend, spec)
    out = upload(backend, "bc.csv", frame.to_csv(index=False).encode(), model="cancer")
    assert out["status"] == "registered" and out["parity"]["passed"], out
    assert out["promoted"]
    # serving takes (and captures) the user's names
    svc = backend.service(capture=True)
    record = {f: float(frame[f].iloc[0]) for f in features}
    got = svc.predict("cancer", [record], request_id="bc-1")
    assert got["predictions"] == [int(frame["target"].iloc[0])]
    svc.capture.flush()
    keys = [i.key for i in backend.ctx.store.list("captures/cancer/")]
    assert keys
    [captured] = captured_rows(backend.ctx.store.get(keys[0]))
    assert "mean radius" in captured["features"] and "mean_radius" not in captured["features"]


def test_item3_names_with_dots_dashes_and_clashes_keep_their_own_columns(backend):
    cols = churn_cols()
    renamed = {"tenure.months": cols["tenure_months"], "tenure_months": cols["monthly_charges"],
               "support-calls": cols["support_calls"], "plan type": cols["plan"],
               "churned": cols["churned"]}
    spec = {"name": "odd", "task": "binary_classification", "target": "churned",
            "features": [{"name": "tenure.months", "type": "numeric"},
                         {"name": "tenure_months", "type": "numeric"},
                         {"name": "support-calls", "type": "numeric", "nullable": True},
                         {"name": "plan type", "type": "categorical"}],
            "estimator": {"kind": "logistic_regression", "params": {}}}
    apply_spec(backend, spec)
    out = upload(backend, "odd.csv", to_csv(renamed), model="odd")
    assert out["status"] == "registered" and out["parity"]["passed"], out
    svc = backend.service(capture=False)
    a = {"tenure.months": 1.0, "tenure_months": 900.0, "support-calls": 9.0, "plan type": "basic"}
    b = {**a, "tenure.months": 200.0, "tenure_months": 5.0, "support-calls": 0.0}
    p = svc.predict("odd", [a, b])["probabilities"]
    assert p[0] != p[1]  # each name reaches its own input (a swap would be caught by parity too)


# -- item 5: the same file after a spec change retrains ----------------------------------------
def test_item5_reuploading_the_same_file_after_a_spec_change_retrains(backend):
    apply_spec(backend, NULLABLE_SPEC)
    data = to_csv(churn_cols())
    assert upload(backend, "a.csv", data)["version"] == 1
    put_object(backend, "datasets/churn/a.csv", data)  # the same bytes, the same spec
    assert [r.get("duplicate") for r in run_once(backend)] == [True]
    apply_spec(backend, {**NULLABLE_SPEC, "estimator": {"kind": "logistic_regression",
                                                        "params": {"C": 0.5}}})
    out = upload(backend, "a.csv", data)
    assert out["version"] == 2 and out["record"]["params"]["C"] == 0.5


# -- item 8: a champion with yes/no labels -----------------------------------------------------
def test_item8_a_yes_no_champion_does_not_poison_later_0_1_versions(backend):
    # yes/no labels name their positive class (issue 23 item 3); 0/1 ones need not
    apply_spec(backend, {**NULLABLE_SPEC, "positive_class": "yes"})
    cols = churn_cols(600, seed=3)
    words = dict(cols, churned=["yes" if y else "no" for y in cols["churned"]])
    first = upload(backend, "words.csv", to_csv(words))
    assert first["status"] == "registered" and first["promoted"]
    assert first["record"]["classes"] == ["no", "yes"]
    assert first["record"]["positive_class"] == "yes"
    apply_spec(backend, NULLABLE_SPEC)
    second = upload(backend, "numbers.csv", to_csv(churn_cols(600, seed=4)))
    gain = second["record"]["gates"]["gain"]
    text = json.dumps(second["record"]["gates"]) + json.dumps(second["reasons"])
    assert "nan" not in text.lower()
    assert gain["champion"] == pytest.approx(first["record"]["metrics"]["roc_auc"])
    assert "classes ['no', 'yes'] differ from the candidate's [0, 1]" in gain["basis"]
    assert isinstance(gain["passed"], bool)
    if not gain["passed"]:
        assert any("compared with the champion's recorded metrics" in r
                   for r in second["reasons"])


# -- item 12: prediction drift uses monitoring.threshold ---------------------------------------
@pytest.mark.parametrize(("threshold", "drifted"), [(0.001, True), (1000.0, False)])
def test_item12_prediction_drift_uses_the_monitoring_threshold(trained, threshold, drifted):
    # the current spec governs monitoring (issue 23 item 5), not the champion's frozen copy
    key = "specs/churn.yaml"
    spec = yaml.safe_load(trained.ctx.store.get(key))
    spec["monitoring"]["threshold"] = threshold
    trained.ctx.store.put(key, yaml.safe_dump(spec).encode())
    svc = trained.service(capture=True)
    records = feature_records(300, seed=9, drift=1.0)
    for i in range(0, 300, 50):
        svc.predict("churn", records[i:i + 50], request_id=f"d{i}")
    svc.capture.flush()
    pred = run_monitor(trained.ctx, "churn")["prediction_drift"]
    assert pred["threshold"] == threshold and pred["drifted"] is drifted
    assert pred["psi"] > 0.001


# -- item 2 (the retryable side): only transient faults retry, and the DLQ notifies ------------
def test_a_retryable_failure_ends_in_the_dlq_with_a_notification_and_shows_stuck(backend):
    apply_spec(backend, NULLABLE_SPEC)
    backend.ctx.store = Flaky(backend.ctx.store, "put", failures=-1, when=model_artifact)
    put_object(backend, "datasets/churn/a.csv", to_csv(churn_cols()))
    results = run_once(backend)
    retried = [r for r in results if r.get("retryable")]
    assert len(retried) == backend.settings.max_receives
    assert all(r["error_type"] == "TransientError" for r in retried)
    [dead] = backend.ctx.train_queue.dead_letters()
    alert = [n for n in notes(backend) if n.get("event") == "dead_letter"]
    assert alert == [{**alert[0], "queue": "train", "model": "churn",
                      "key": "datasets/churn/a.csv", "message_id": dead.id}]
    [v] = backend.ctx.registry.list_versions("churn")
    assert v["status"] == "pending" and v["stuck"] is False  # not yet past the visibility
    later = FixedClock(datetime.now(UTC) + timedelta(seconds=backend.settings.train_visibility_s
                                                     + 60))
    [v] = Registry(backend.ctx.table, later,
                   stuck_after_s=backend.settings.train_visibility_s).list_versions("churn")
    assert v["stuck"] is True and v["pending_seconds"] > backend.settings.train_visibility_s


def test_registry_stuck_flag_comes_from_the_backend_settings(tmp_path):
    from mlops_kit.settings import Settings

    b = local_backend(Settings(workspace=tmp_path / "ws", train_visibility_s=77))
    assert b.ctx.registry.stuck_after_s == 77


def test_a_bug_in_a_job_is_final_reported_without_traceback(backend, monkeypatch):
    """An unknown exception is a bug: a retry would hit it again. The version fails with the
    exception's type and message (the traceback goes to the log at INFO only)."""
    from mlops_kit.core.training import usecase

    def buggy(*a, **k):
        raise KeyError("oops")

    monkeypatch.setattr(usecase, "train", buggy)
    apply_spec(backend, NULLABLE_SPEC)
    out = upload(backend, "a.csv", to_csv(churn_cols()))
    assert out["status"] == "failed" and out["error_type"] == "KeyError"
    assert out["record"]["reasons"] == ["internal error KeyError: 'oops'"]


def test_transient_error_is_retryable_and_spec_error_is_final():
    from mlops_kit.errors import (
        ExportError,
        NotFound,
        RegistryConflict,
        StorageError,
        TrainingError,
        ValidationError,
        is_retryable,
    )

    assert all(is_retryable(e) for e in (TransientError("t"), StorageError("s"),
                                         RegistryConflict("r"), ConnectionResetError(),
                                         TimeoutError()))
    assert not any(is_retryable(e) for e in (SpecError("s"), ValidationError("v"),
                                             TrainingError("t"), ExportError("e"),
                                             NotFound("n"), KeyError("k"), ValueError("v")))


def test_spec_yaml_with_unknown_param_is_named_by_the_door():
    spec = parse_spec(yaml.safe_load(yaml.safe_dump(
        {**FAST_SPEC, "estimator": {"kind": "logistic_regression", "params": {"Cee": 1}}})))
    with pytest.raises(SpecError, match=r"estimator.params.Cee: not a parameter of "
                                        r"logistic_regression"):
        check_params(spec)
