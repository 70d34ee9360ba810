"""Issue 23 item 3: a binary task with labels churned/stayed names its positive class. Sorted
order made "stayed" the positive class and the reported f1 was the F1 of the wrong class."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from mlops_kit.core.metrics import compute_metrics
from mlops_kit.core.spec import parse_spec
from mlops_kit.core.synthetic import churn_columns, churn_records
from mlops_kit.core.validation.validator import validate_dataset
from mlops_kit.errors import SpecError
from mlops_kit.local.worker import run_once, upload
from tests.support import FAST_SPEC, apply_spec


def _named_csv(n: int, seed: int) -> bytes:
    """The churn data with the labels spelled churned/stayed (as in the issue)."""
    cols = churn_columns(n, seed=seed)
    cols["churned"] = ["churned" if v else "stayed" for v in cols["churned"]]
    names = list(cols)
    lines = [",".join(names)]
    for i in range(n):
        lines.append(",".join("" if cols[c][i] is None else str(cols[c][i]) for c in names))
    return ("\n".join(lines) + "\n").encode()


def test_f1_is_the_named_positive_class():
    y = np.array(["churned"] * 3 + ["stayed"] * 7)
    p = np.array(["churned", "stayed", "stayed"] + ["stayed"] * 6 + ["churned"])
    got = compute_metrics("binary_classification", y, p, classes=["churned", "stayed"],
                          positive="churned")
    assert got["f1"] == pytest.approx(f1_score(y, p, pos_label="churned"))
    assert got["precision"] == pytest.approx(precision_score(y, p, pos_label="churned"))
    assert got["recall"] == pytest.approx(recall_score(y, p, pos_label="churned"))
    default = compute_metrics("binary_classification", y, p, classes=["churned", "stayed"])
    assert default["f1"] == pytest.approx(f1_score(y, p, pos_label="stayed"))
    assert got["f1"] != pytest.approx(default["f1"])
    # 0/1 and false/true need no name: the positive class is 1 / true
    yb = np.array([0, 1, 1, 0])
    assert compute_metrics("binary_classification", yb, np.array([0, 1, 0, 0]),
                           classes=[0, 1], positive=True)["f1"] == pytest.approx(2 / 3)


def test_validation_refuses_to_guess_and_lists_the_values():
    spec = parse_spec(FAST_SPEC)
    result = validate_dataset(io.BytesIO(_named_csv(400, 3)), "csv", spec)
    assert not result.passed
    rule = next(r for r in result.report["rules"] if r["rule"] == "positive_class")
    assert not rule["passed"]
    assert "'churned', 'stayed'" in rule["message"] and "positive_class" in rule["message"]
    named = parse_spec({**FAST_SPEC, "positive_class": "churned"})
    assert validate_dataset(io.BytesIO(_named_csv(400, 3)), "csv", named).passed
    wrong = parse_spec({**FAST_SPEC, "positive_class": "yes"})
    bad = validate_dataset(io.BytesIO(_named_csv(400, 3)), "csv", wrong)
    assert not bad.passed and "'yes' is not one of the labels" in json.dumps(bad.report)
    # the 0/1 data needs no positive_class
    from mlops_kit.core.synthetic import churn_csv
    assert validate_dataset(io.BytesIO(churn_csv(400, seed=3)), "csv", spec).passed


def test_positive_class_is_only_for_binary_tasks():
    with pytest.raises(SpecError, match="positive_class is for binary_classification"):
        parse_spec({**FAST_SPEC, "task": "multiclass_classification", "positive_class": "a"})
    # a spec without one hashes as before it existed
    assert parse_spec(FAST_SPEC).spec_hash() == parse_spec({**FAST_SPEC}).spec_hash()
    assert "positive_class" not in parse_spec(FAST_SPEC).canonical_json()


def test_training_records_the_f1_of_the_positive_class(backend, tmp_path):
    apply_spec(backend, {**FAST_SPEC, "positive_class": "churned"})
    data = tmp_path / "named.csv"
    data.write_bytes(_named_csv(900, 5))
    upload(backend, data, "churn")
    results = run_once(backend)
    assert [r["status"] for r in results] == ["validated", "registered"], results
    record = backend.ctx.registry.get_version("churn", 1)
    assert record["positive_class"] == "churned"
    # re-score the served model on the holdout rows by hand: the recorded f1 is churned's
    svc = backend.service()
    rows = [{k: v for k, v in r.items() if k not in ("churned", "customer_id")}
            for r in churn_records(300, seed=99)]
    truth = ["churned" if r["churned"] else "stayed" for r in churn_records(300, seed=99)]
    preds = svc.predict("churn", rows)["predictions"]
    want = f1_score(truth, preds, pos_label="churned")
    live = compute_metrics("binary_classification", np.array(truth), np.array(preds),
                           classes=record["classes"], positive=record["positive_class"])
    assert live["f1"] == pytest.approx(want)
    assert 0 < record["metrics"]["f1"] < 0.8  # churned is the minority: its F1 is the lower one


def test_an_unnamed_positive_class_quarantines_the_upload(backend, tmp_path):
    apply_spec(backend, FAST_SPEC)
    data = tmp_path / "named.csv"
    data.write_bytes(_named_csv(600, 6))
    upload(backend, data, "churn")
    results = run_once(backend)
    assert results[0]["status"] == "quarantined", results
    assert backend.ctx.registry.list_versions("churn") == []


def test_spec_check_with_data_lists_the_values_and_exits_1(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from mlops_kit.cli.app import app

    spec = tmp_path / "churn.yaml"
    spec.write_text(yaml.safe_dump(FAST_SPEC))
    data = tmp_path / "named.csv"
    data.write_bytes(_named_csv(400, 3))
    env = {"MLOPSKIT_WORKSPACE": str(tmp_path / "ws")}
    r = CliRunner().invoke(app, ["spec", "check", str(spec), "--data", str(data), "--json"],
                           env=env)
    assert r.exit_code == 1, r.output
    out = json.loads(r.stdout)["data"]  # the file checked as an upload would be
    assert out["passed"] is False
    assert [x["rule"] for x in out["failed_rules"]] == ["positive_class"]
    spec.write_text(yaml.safe_dump({**FAST_SPEC, "positive_class": "churned"}))
    r = CliRunner().invoke(app, ["spec", "check", str(spec), "--data", str(data)], env=env)
    assert r.exit_code == 0 and "valid" in r.stdout
