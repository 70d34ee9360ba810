"""Issue 23 item 5: monitoring settings applied with `spec apply` take effect at the next
monitoring run (retrain_on_drift: true stayed `disabled` until a new champion, silently); spec
apply says what changed and when it takes effect; `monitor` prints the retrain decision and
live quality."""

from __future__ import annotations

import yaml

from tests.e2e.test_cli import cli, j
from tests.support import FAST_SPEC, feature_records


def _serve_drifted(trained, n=120):
    svc = trained.service()
    ids, preds = [], []
    for i, record in enumerate(feature_records(n, seed=41, drift=1.0)):
        out = svc.predict("churn", [record], request_id=f"d{i}")
        ids.append(out["request_id"])
        preds.append(out["predictions"][0])
    svc.capture.flush()
    return ids, preds


def test_spec_apply_governs_the_next_monitoring_run(trained, tmp_path):
    ws = trained.settings.workspace
    ids, preds = _serve_drifted(trained)
    before = j(cli(ws, "monitor", "churn", "--window-hours", "1", "--json"))
    assert before["drifted"] and before["retrain"]["status"] == "disabled"
    spec = tmp_path / "churn.yaml"
    spec.write_text(yaml.safe_dump({**FAST_SPEC, "monitoring": {
        **FAST_SPEC["monitoring"], "retrain_on_drift": True, "threshold": 0.25}}))
    applied = j(cli(ws, "spec", "apply", spec, "--json"))
    changes = {c["path"]: c for c in applied["changes"]}
    assert set(changes) == {"monitoring.retrain_on_drift", "monitoring.threshold"}
    assert changes["monitoring.retrain_on_drift"]["before"] is False
    assert changes["monitoring.retrain_on_drift"]["after"] is True
    assert "next monitoring run" in changes["monitoring.retrain_on_drift"]["takes_effect"]
    # the champion is unchanged (still v1, its frozen spec says retrain_on_drift: false) ...
    assert trained.ctx.registry.champion_version("churn") == 1
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,churned\n" + "".join(f"{i},{p}\n" for i, p in zip(ids, preds)))
    cli(ws, "labels", labels, "--model", "churn")
    # ... and the next run follows the spec as applied now
    human = cli(ws, "monitor", "churn", "--window-hours", "1")
    assert "retrain: requested" in human.stdout, human.stdout
    assert "live quality: accuracy 1.000" in human.stdout
    assert "specs/churn as applied now" in human.stdout
    report = j(cli(ws, "report", "churn", "--json"))
    assert report["policy"]["retrain_on_drift"] is True and report["policy"]["threshold"] == 0.25
    assert report["retrain"]["status"] in ("requested", "cooldown")


def test_spec_apply_says_when_each_change_takes_effect(tmp_path):
    ws = tmp_path / "ws"
    spec = tmp_path / "churn.yaml"
    spec.write_text(yaml.safe_dump(FAST_SPEC))
    first = cli(ws, "spec", "apply", spec)
    assert "new spec" in first.stdout
    changed = {**FAST_SPEC, "description": "new words",
               "estimator": {"kind": "logistic_regression", "params": {"C": 0.5}}}
    spec.write_text(yaml.safe_dump(changed))
    out = j(cli(ws, "spec", "apply", spec, "--json"))
    when = {c["path"]: c["takes_effect"] for c in out["changes"]}
    assert when["description"].startswith("now")
    assert when["estimator.params.C"].startswith("at the next upload")
    human = cli(ws, "spec", "apply", spec)
    assert "no change" in human.stdout
