"""`mlops-kit spec check` / `upload` / `runs list|show|compare` on a spec with a search, as a
user runs them (the CLI in-process, as tests/e2e/test_cli.py): strict JSON, exit codes."""

from __future__ import annotations

import json

import pytest
import yaml

from mlops_kit.core.synthetic import churn_csv
from tests.e2e.test_cli import cli
from tests.support import FAST_SPEC

pytestmark = pytest.mark.slow

SPEC = {**FAST_SPEC, "search": {"cv": 2, "candidates": [
    {"kind": "logistic_regression", "grid": {"C": [0.05, 5.0]}},
    {"kind": "random_forest", "params": {"n_estimators": 10, "bootstrap": False,
                                         "max_samples": 0.5}},
]}}


def strict(r) -> object:
    def no_constants(name):
        raise AssertionError(f"not strict JSON: {name}")

    return json.loads(r.stdout, parse_constant=no_constants)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    ws = root / "ws"
    spec = root / "churn.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    cli(ws, "spec", "apply", str(spec), "--json")
    for seed in (1, 2):
        data = root / f"churn{seed}.csv"
        data.write_bytes(churn_csv(700, seed=seed))
        up = strict(cli(ws, "upload", str(data), "--model", "churn", "--json"))
        assert up["results"][-1]["status"] == "registered", up
    return ws


def test_spec_check_counts_trials_and_names_a_bad_parameter(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(SPEC))
    assert strict(cli(tmp_path / "w", "spec", "check", str(good), "--json"))["search_trials"] == 4
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SPEC, "search": {"candidates": [
        {"kind": "random_forest", "grid": {"max_dept": [2, 3]}}]}}))
    r = cli(tmp_path / "w", "spec", "check", str(bad), "--json", check=False)
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    err = strict(r)
    assert "max_dept" in err["error"] and err["field"] == "search.candidates.0.max_dept"


def test_runs_list_and_show(ws):
    runs = strict(cli(ws, "runs", "list", "churn", "--json"))
    assert [r["run"] for r in runs] == [2, 1]  # newest first
    assert all(r["status"] == "finished" and r["trials"] == 4 and r["failed"] == 1 for r in runs)
    shown = strict(cli(ws, "runs", "show", "churn", "1", "--json"))
    rows = shown["trials"]
    values = [r["value"] for r in rows if r["value"] is not None]
    assert values == sorted(values, reverse=True)  # sorted by the metric (roc_auc: higher)
    assert [r["best"] for r in rows].count(True) == 1 and rows[0]["best"]
    assert rows[0]["hash"] == shown["summary"]["best"]["hash"]
    assert rows[-1]["status"] == "failed" and "bootstrap" in rows[-1]["reason"]
    human = cli(ws, "runs", "show", "churn", "1").stdout
    assert "★" in human and rows[0]["hash"][:6] in human


def test_runs_compare(ws):
    out = strict(cli(ws, "runs", "compare", "churn:1", "churn:2", "--json"))
    assert out["a"]["run"] == 1 and out["b"]["run"] == 2 and out["metric"] == "roc_auc"
    assert len(out["common"]) == 4  # the same candidates tried on two datasets
    assert out["best_delta"] == pytest.approx(out["b"]["best"]["cv"] - out["a"]["best"]["cv"])
    same = strict(cli(ws, "runs", "compare", "1", "2", "--model", "churn", "--json"))
    assert same["common"] == out["common"]
    assert "best candidate" in cli(ws, "runs", "compare", "churn:1", "churn:2").stdout


@pytest.mark.parametrize("args", [("runs", "show", "churn", "9"),
                                  ("runs", "compare", "1", "2"),
                                  ("runs", "compare", "churn:x", "churn:1")])
def test_runs_errors_are_messages_with_exit_2(ws, args):
    r = cli(ws, *args, "--json", check=False)
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert strict(r)["error"]
