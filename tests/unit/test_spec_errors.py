"""Spec errors people can act on (issue 26): YAML/JSON positions, the yes/no trap, did-you-mean
and delimiter hints for missing columns, `spec check --data`, the upload warning for columns
the spec does not use, promotion metric defaults per task, parity tolerance kind."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from mlops_kit.cli.app import app
from mlops_kit.core.metrics import compute_metrics
from mlops_kit.core.spec import load_spec_bytes
from mlops_kit.core.validation.rules import missing_hint
from mlops_kit.errors import SpecError

runner = CliRunner()
BASE = "name: m\ntask: {task}\ntarget: y\nfeatures:\n  - {{name: x, type: numeric}}\n"


def test_yaml_syntax_error_names_line_and_column():
    raw = b"name: m\ntask: regression\nfeatures:\n  - name: x\n   type: numeric\n"
    with pytest.raises(SpecError, match=r"not valid YAML at line 5, column 4"):
        load_spec_bytes(raw, source="m.yaml")


def test_json_syntax_error_names_line_and_column():
    with pytest.raises(SpecError, match=r"not valid JSON at line 2, column 10"):
        load_spec_bytes(b'{"name": "m",\n "task": }')


def test_unquoted_yes_no_categories_explain_the_yaml_boolean_trap():
    raw = (BASE.format(task="binary_classification")
           + "  - name: flag\n    type: categorical\n    categories: [yes, no]\n").encode()
    with pytest.raises(SpecError) as exc:
        load_spec_bytes(raw)
    assert "got True" in exc.value.message and 'quote the value ("yes")' in exc.value.message
    quoted = raw.replace(b"[yes, no]", b'["yes", "no"]')
    assert load_spec_bytes(quoted).features[1].categories == ["yes", "no"]


@pytest.mark.parametrize("task,metric,extra", [
    ("binary_classification", "roc_auc", ""),
    ("multiclass_classification", "f1_macro", ""),
    ("regression", "rmse", "estimator: {kind: ridge}\n"),
    ("regression", "rmse", "estimator: {kind: ridge}\npromotion: {min_gain: 0.01}\n"),
])
def test_promotion_metric_defaults_to_the_tasks(task, metric, extra):
    spec = load_spec_bytes((BASE.format(task=task) + extra).encode())
    assert spec.promotion.metric == metric


def test_an_explicit_metric_stays_and_a_wrong_one_is_still_refused():
    raw = BASE.format(task="regression") + "estimator: {kind: ridge}\npromotion: {metric: mae}\n"
    assert load_spec_bytes(raw.encode()).promotion.metric == "mae"
    with pytest.raises(SpecError, match="promotion.metric 'roc_auc' is not one of"):
        load_spec_bytes(raw.replace("mae", "roc_auc").encode())


def test_f1_macro_weighs_every_class_alike():
    m = compute_metrics("multiclass_classification", ["a"] * 8 + ["b", "c"],
                        ["a"] * 8 + ["a", "c"])
    assert m["f1_macro"] == pytest.approx((16 / 17 + 0 + 1) / 3)
    assert m["f1"] > m["f1_macro"]


@pytest.mark.parametrize("names,hint", [
    (["tenure;plan;churned"], "looks semicolon-separated"),
    (["tenure\tplan\tchurned"], "looks tab-separated"),
    (["Tenure", "plan"], "did you mean 'Tenure'?"),
    (["tenur", "plan"], "did you mean 'tenur'?"),
])
def test_missing_column_hints(names, hint):
    assert hint in missing_hint("tenure", names)


def test_no_hint_for_an_unrelated_header():
    assert missing_hint("tenure", ["alpha", "beta"]) == ""


# -- the commands ------------------------------------------------------------------------------
def _files(tmp_path, sep=","):
    spec = tmp_path / "m.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "m", "task": "binary_classification", "target": "y",
        "features": [{"name": "tenure", "type": "numeric", "min": 0, "max": 100}],
        "validation": {"min_rows": 10}}))
    rows = [sep.join(["tenure", "y", "note"])] + [sep.join([str(i), str(i % 2), "n"])
                                                 for i in range(40)]
    data = tmp_path / "d.csv"
    data.write_text("\n".join(rows) + "\n")
    return spec, data


def test_spec_check_data_passes_and_names_unused_columns(tmp_path):
    spec, data = _files(tmp_path)
    r = runner.invoke(app, ["spec", "check", str(spec), "--data", str(data), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)["data"]
    assert out["passed"] and out["rows"] == 40 and out["unused_columns"] == ["note"]


def test_spec_check_data_fails_with_the_delimiter_hint(tmp_path):
    spec, data = _files(tmp_path, sep=";")
    r = runner.invoke(app, ["spec", "check", str(spec), "--data", str(data), "--json"])
    assert r.exit_code == 1
    failed = json.loads(r.stdout)["data"]["failed_rules"]
    assert failed[0]["rule"] == "missing_column" and "semicolon-separated" in failed[0]["message"]


def test_upload_warns_about_columns_not_in_the_spec(tmp_path):
    spec, data = _files(tmp_path)
    env = {"MLOPSKIT_WORKSPACE": str(tmp_path / "ws")}
    assert runner.invoke(app, ["spec", "apply", str(spec)], env=env).exit_code == 0
    r = runner.invoke(app, ["upload", str(data), "--model", "m", "--no-process", "--json"],
                      env=env)
    assert r.exit_code == 0, r.output
    assert "will be ignored: ['note']" in r.stderr
    assert json.loads(r.stdout)["warnings"] == ["columns not in the spec are ignored: ['note']"]


def test_parity_says_whether_its_tolerance_is_relative_or_absolute():
    import numpy as np

    from mlops_kit.cli.progress import Steps
    from mlops_kit.core.training.export import ParityResult, _regression_parity

    reg = _regression_parity(np.array([1000.0, 2.0]), np.array([1000.05, 2.0]), 1e-4)
    assert reg.tolerance_kind == "relative" and reg.passed  # 5e-5 relative to 1000
    assert reg.to_dict()["tolerance_kind"] == "relative"
    assert ParityResult(True, 2, 1.0, 0.0, 0.0, 1e-4).tolerance_kind == "absolute"

    from rich.console import Console
    out = Console(record=True, width=200)
    with Steps(out) as steps:
        steps.begin("exporting")
        steps.core_step("parity", {"parity": reg.to_dict()})
    assert "tolerance 0.0001 relative to max(1, |prediction|)" in out.export_text()
