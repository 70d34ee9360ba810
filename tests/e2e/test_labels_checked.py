"""Issue 23 item 6: labels are validated like datasets. Labels that are not the model's classes
(CHURNED/STAYED for a 0/1 model) are quarantined with a report, the original kept, and never
overwrite the right ones; ids relabelled with other values are reported (the later file wins,
and the report says so)."""

from __future__ import annotations

import json

from mlops_kit.core.monitoring.label_checks import check_values
from mlops_kit.core.spec import parse_spec
from tests.e2e.test_cli import cli, j
from tests.support import FAST_SPEC, feature_records


def _serve(trained, n=60):
    svc = trained.service()
    ids, preds = [], []
    for i in range(n):
        out = svc.predict("churn", feature_records(1, seed=300 + i), request_id=f"r{i}")
        ids.append(out["request_id"])
        preds.append(out["predictions"][0])
    svc.capture.flush()
    return ids, preds


def _write(path, rows):
    path.write_text("request_id,churned\n" + "".join(f"{i},{v}\n" for i, v in rows))
    return path


def test_wrong_classes_are_quarantined_and_never_overwrite(trained, tmp_path):
    ws, store = trained.settings.workspace, trained.ctx.store
    ids, preds = _serve(trained)
    good = _write(tmp_path / "labels.csv", zip(ids, preds))
    assert j(cli(ws, "labels", good, "--model", "churn", "--json"))["results"][0]["status"] \
        == "labels_received"
    before = j(cli(ws, "monitor", "churn", "--window-hours", "1", "--json"))
    assert before["quality"]["champion"]["metrics"]["accuracy"] == 1.0
    assert "log_loss" in before["quality"]["champion"]["metrics"]
    # the file: CHURNED/STAYED, not the model's classes 0/1
    bad = _write(tmp_path / "later.csv",
                 ((i, "CHURNED" if p == 0 else "STAYED") for i, p in zip(ids, preds)))
    r = cli(ws, "labels", bad, "--model", "churn", "--json", check=False)
    assert r.exit_code == 1
    result = j(r)["results"][0]
    assert result["status"] == "quarantined"
    assert "CHURNED" in result["reason"] and "['0', '1']" in result["reason"]
    report = json.loads(store.get(result["quarantine_report_key"]))
    assert report["rules"][0]["rule"] == "label_values" and report["rules"][0]["count"] == 60
    assert store.exists("labels/churn/later.csv")  # the original is never deleted
    after = j(cli(ws, "monitor", "churn", "--window-hours", "1", "--json"))
    assert after["quality"]["champion"]["metrics"] == before["quality"]["champion"]["metrics"]
    assert after["quality"]["labels"]["skipped_files"][0]["key"] == "labels/churn/later.csv"


def test_conflicting_duplicates_are_reported_and_the_later_file_wins(trained, tmp_path):
    ws, store = trained.settings.workspace, trained.ctx.store
    ids, preds = _serve(trained)
    cli(ws, "labels", _write(tmp_path / "z-first.csv", zip(ids, preds)), "--model", "churn")
    # a later upload (whose name sorts first) flips 10 labels, and labels 3 ids twice
    flipped = [(i, 1 - p) for i, p in zip(ids[:10], preds[:10])]
    twice = [(ids[20], preds[20]), (ids[20], 1 - preds[20]), (ids[21], 1 - preds[21]),
             (ids[21], preds[21]), (ids[22], preds[22]), (ids[22], 1 - preds[22])]
    r = cli(ws, "labels", _write(tmp_path / "a-fix.csv", flipped + twice), "--model", "churn",
            "--json")
    result = j(r)["results"][0]
    assert result["status"] == "labels_received"
    conflicts = result["conflicts"]
    # ids 20 and 22 end relabelled against the first file too; 21 ends as it was
    assert conflicts["earlier_files"] == 12 and conflicts["in_file"] == 3
    assert "this file's labels win" in result["summary"] and "later row wins" in result["summary"]
    assert json.loads(store.get(result["report_key"]))["conflicts"]["earlier_files"] == 12
    human = cli(ws, "labels", _write(tmp_path / "a-fix.csv", flipped), "--model", "churn")
    assert "labels win" in human.stdout
    report = j(cli(ws, "monitor", "churn", "--window-hours", "1", "--json"))
    # the later upload wins: exactly the 10 flipped labels are wrong now
    assert report["quality"]["champion"]["metrics"]["accuracy"] == 50 / 60


def test_a_regression_target_must_be_numbers():
    spec = parse_spec({"name": "price", "task": "regression", "target": "y",
                       "estimator": {"kind": "ridge"},
                       "features": FAST_SPEC["features"], "promotion": {"metric": "rmse"}})
    rule = check_values({"1.5": ["a"], "n/a": ["b", "c"], "2": ["d"]}, spec, None)
    assert not rule["passed"] and rule["count"] == 2 and "'n/a'" in rule["message"]
    assert check_values({"1.5": ["a"], "2e3": ["b"]}, spec, None)["passed"]
