"""A workspace with a real lifecycle for the console (and anything else that wants one):
several models and versions trained for real on the local backend, served traffic that drifts
hour after hour, late labels, monitoring runs, a retrain on drift, a rollback, a canary, an
experiment run, and user-controlled strings carrying XSS payloads (a spec description and a
dataset file name).

Small on purpose (1,200 rows, logistic regression / a 10-tree forest): about 20 s on 2 cores.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from mlops_kit.bootstrap import Backend, local_backend
from mlops_kit.clock import FixedClock
from mlops_kit.core.monitoring.usecase import run_monitor
from mlops_kit.core.synthetic import churn_csv, churn_records
from mlops_kit.local.worker import announcer, put_object, run_once, upload
from mlops_kit.settings import Settings
from tests.support import FAST_SPEC

T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
ROWS = 1200
# Each payload sets a different window.__xss value if it ever runs.
XSS_DESCRIPTION = ('<script>window.__xss = "description"</script>'
                   '<img src=x onerror="window.__xss = \'img\'"> churn, but hostile')
XSS_FILE = "<svg onload=window.__xss=3>.csv"

CHURN = {**FAST_SPEC, "promotion": {"metric": "roc_auc", "minimum": 0.6, "min_gain": -1.0},
         "monitoring": {"drift_method": "psi", "threshold": 0.2, "min_rows": 50,
                        "quality_metric": "accuracy", "quality_minimum": 0.6,
                        "retrain_on_drift": True}}
FOREST = {**CHURN, "name": "churn-forest",
          "description": "The same question with a small random forest.",
          "estimator": {"kind": "random_forest",
                        "params": {"n_estimators": 10, "max_depth": 5, "n_jobs": 1}},
          "monitoring": {"threshold": 0.2, "min_rows": 50}}
# the forest's second upload is an experiment: the spec's estimator + a 2-value grid, 2-fold CV
FOREST_SEARCH = {"cv": 2, "candidates": [
    {"kind": "random_forest", "params": {"n_estimators": 10, "n_jobs": 1},
     "grid": {"max_depth": [3, 6]}}]}
HOSTILE = {**FAST_SPEC, "name": "xss-lab", "description": XSS_DESCRIPTION,
           "promotion": {"metric": "roc_auc", "minimum": 0.6, "min_gain": -1.0}}


def _apply(b: Backend, spec: dict) -> None:
    b.ctx.store.put(f"specs/{spec['name']}.yaml", yaml.safe_dump(spec).encode())


def _train(b: Backend, path: Path, model: str, seed: int, name: str | None = None) -> dict:
    path.write_bytes(churn_csv(ROWS, seed=seed))
    upload(b, path, model, name=name)
    trained = [r for r in run_once(b) if r.get("model") == model and "version" in r]
    assert trained and trained[-1]["status"] == "registered", trained
    return trained[-1]


def _serve_hour(b: Backend, model: str, hour: int, drift: float, n: int = 240) -> None:
    """n real predictions captured at the clock's time, then their true labels (late
    ground truth, keyed by the captured row id)."""
    svc = b.service(capture=True)
    records = churn_records(n, seed=100 + hour, drift=drift)
    truth = []
    for i in range(0, n, 40):
        rid = f"{model}-h{hour}-{i}"
        batch = records[i:i + 40]
        svc.predict(model, [{k: v for k, v in r.items() if k not in ("churned", "customer_id")}
                            for r in batch], request_id=rid)
        truth += [(f"{rid}#{j}", r["churned"]) for j, r in enumerate(batch)]
    svc.capture.flush()
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["request_id", "churned"])
    w.writerows(truth)
    put_object(b, f"labels/{model}/hour-{hour:02d}.csv", buf.getvalue().encode())
    run_once(b)  # the labels upload is checked like the cloud would


def build_console_workspace(ws: Path) -> dict[str, Any]:
    clock = FixedClock(T0)
    b = local_backend(Settings(workspace=ws, backend="local", refresh_seconds=0.0), clock=clock)
    inputs = ws / "inputs"
    inputs.mkdir(parents=True)
    story: dict[str, Any] = {"workspace": ws, "models": ["churn", "churn-forest", "xss-lab"]}
    for spec in (CHURN, FOREST, HOSTILE):
        _apply(b, spec)

    # churn: v1, then v2 on fresh data an hour later (both champions in turn)
    _train(b, inputs / "churn-jan.csv", "churn", seed=7)
    clock.advance(hours=1)
    _train(b, inputs / "churn-feb.csv", "churn", seed=8)
    # six hours of traffic drifting further every hour, monitored hourly; the drift triggers
    # a retrain (v3, lineage trigger=drift) through validate -> train like any upload
    announce = announcer(b)
    for hour in range(6):
        clock.advance(hours=1)
        _serve_hour(b, "churn", hour, drift=0.2 * hour)
        report = run_monitor(b.ctx, "churn", window_hours=1, announce=announce)
        if report["retrain"].get("status") == "requested":
            story["retrain"] = [r for r in run_once(b) if "version" in r][-1]
            story["retrain_hour"] = hour
    assert "retrain" in story, "the drifted traffic should have triggered a retrain"
    # the retrained champion disappoints: roll back to v2, keep v3 as a 10% canary
    clock.advance(hours=1)
    reg = b.ctx.registry
    story["rollback"] = reg.rollback("churn", actor="ops@example.com",
                                     reason="v3 under-performs on the new enterprise plan")
    reg.set_alias("churn", "challenger", story["retrain"]["version"], actor="ops@example.com",
                  reason="canary 10%", extra={"mode": "canary", "weight": 0.1})
    _serve_hour(b, "churn", 6, drift=1.0)
    run_monitor(b.ctx, "churn", window_hours=1, announce=announce)

    # churn-forest: two versions (the second from an experiment run), v1 scored in shadow
    _train(b, inputs / "forest-a.csv", "churn-forest", seed=11)
    clock.advance(minutes=20)
    _apply(b, {**FOREST, "search": FOREST_SEARCH})
    story["run"] = _train(b, inputs / "forest-b.csv", "churn-forest", seed=12)
    reg.set_alias("churn-forest", "challenger", 1, actor="ci", reason="shadow",
                  extra={"mode": "shadow", "weight": 1.0})
    for hour in (7, 8):
        clock.advance(hours=1)
        _serve_hour(b, "churn-forest", hour, drift=0.0)
        run_monitor(b.ctx, "churn-forest", window_hours=1)

    # xss-lab: user-controlled strings everywhere (description, dataset file name)
    clock.advance(minutes=5)
    story["xss"] = _train(b, inputs / "plain.csv", "xss-lab", seed=21, name=XSS_FILE)
    story["clock"] = clock
    story["backend"] = b
    return story
