"""The monitor over captures of a model with every new feature type (boolean, datetime, text,
a pooled categorical) and an id column: it runs, judges each feature, and the captured id
column is not mistaken for a feature."""

from __future__ import annotations

import json

import numpy as np

from mlops_kit.core.monitoring.usecase import run_monitor
from mlops_kit.local.worker import put_object, run_once
from tests.support import apply_spec, make_backend

SPEC = {
    "name": "mixed", "task": "binary_classification", "target": "y",
    "features": [
        {"name": "x", "type": "numeric"},
        {"name": "flag", "type": "boolean"},
        {"name": "since", "type": "datetime"},
        {"name": "note", "type": "text", "nullable": True},
        {"name": "plan", "type": "categorical", "max_categories": 5},
        {"name": "cid", "role": "id"},
    ],
    "estimator": {"kind": "logistic_regression"},
    "validation": {"min_rows": 50, "max_null_fraction": 0.5},
    "monitoring": {"min_rows": 50},
}
WORDS = ["slow", "great", "app", "crash", "bill"]


def rows(n, seed, shift=False):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = rng.normal() + (2 if shift else 0)
        out.append({"cid": f"C{seed}-{i}", "x": round(x, 4),
                    "flag": "yes" if rng.random() < (0.9 if shift else 0.3) else "no",
                    "since": f"20{rng.integers(18, 24)}-{rng.integers(1, 13):02d}-"
                             f"{rng.integers(1, 29):02d}",
                    "note": " ".join(rng.choice(WORDS, rng.integers(1, 12 if shift else 4))),
                    "plan": f"p{rng.integers(0, 9)}"})
    return out


def test_monitor_judges_every_new_type_and_ignores_the_id(tmp_path):
    b = make_backend(tmp_path / "ws")
    apply_spec(b, SPEC)
    train = rows(600, 1)
    lines = ["cid,x,flag,since,note,plan,y"] + [
        f'{r["cid"]},{r["x"]},{r["flag"]},{r["since"]},"{r["note"]}",{r["plan"]},'
        f'{int(r["x"] > 0)}' for r in train]
    put_object(b, "datasets/mixed/one.csv", ("\n".join(lines) + "\n").encode())
    assert run_once(b)[-1]["status"] == "registered"
    svc = b.service()
    for i, r in enumerate(rows(200, 2, shift=True)):
        svc.predict("mixed", [r], request_id=f"r{i}")
    svc.capture.flush()
    report = run_monitor(b.ctx, "mixed", window_hours=24)
    assert report["status"] == "ok" and report["rows"] == 200, report
    drift = report["drift"]
    assert set(drift["features"]) == {"x", "flag", "since", "note", "plan"}
    assert {"x", "flag", "note"} <= set(drift["drifted_features"])
    # the words training kept (profile.json) judge the captured text: the shifted window's
    # texts use the same words, only more of them (length drift, no out-of-vocabulary words)
    profile = json.loads(b.ctx.store.get("models/mixed/000001/profile.json"))
    terms = profile["features"]["note"]["terms"]
    assert set(terms["vocabulary"]) == set(WORDS) and terms["oov_rate"] == 0.0
    note = drift["features"]["note"]
    assert note["type"] == "text" and note["oov_rate_cur"] == 0.0 and not note["oov_alert"]
    flag = drift["features"]["flag"]
    assert flag["type"] == "boolean" and flag["true_rate_cur"] > 0.8 > 0.4 > flag["true_rate_ref"]
    since = drift["features"]["since"]
    assert since["type"] == "datetime" and since["out_of_range_rate"] == 0.0
    assert set(since["parts"]) == {"month", "weekday", "hour"}
    html = b.ctx.store.get(report["html_key"]).decode()
    assert "out of vocabulary 0.0% → 0.0%" in html and 'data-part="weekday"' in html


def test_retrain_on_drift_writes_captured_dates_as_dates(tmp_path):
    """Captured dates are days since the epoch: the retrain dataset writes them back as ISO
    dates (format_days), so it validates and trains like any upload instead of being
    quarantined for 'not a date'."""
    import csv
    import io

    from mlops_kit.core.features import parse_days

    b = make_backend(tmp_path / "ws")
    spec = {**SPEC, "monitoring": {"min_rows": 50, "retrain_on_drift": True}}
    apply_spec(b, spec)
    train = rows(600, 1)
    lines = ["cid,x,flag,since,note,plan,y"] + [
        f'{r["cid"]},{r["x"]},{r["flag"]},{r["since"]},"{r["note"]}",{r["plan"]},'
        f'{int(r["x"] > 0)}' for r in train]
    put_object(b, "datasets/mixed/one.csv", ("\n".join(lines) + "\n").encode())
    assert run_once(b)[-1]["status"] == "registered"
    svc = b.service()
    live = rows(200, 2, shift=True)
    live[0]["since"] = "2024-02-29T13:00:00+01:00"
    for i, r in enumerate(live):
        svc.predict("mixed", [r], request_id=f"r{i}")
    svc.capture.flush()
    labels = "request_id,y\n" + "".join(f"r{i},{int(r['x'] > 2)}\n" for i, r in enumerate(live))
    put_object(b, "labels/mixed/a.csv", labels.encode())
    assert run_once(b)[0]["status"] == "labels_received"
    announced = []
    report = run_monitor(b.ctx, "mixed", window_hours=24,
                         announce=lambda key, info: announced.append(key) or
                         b.validate_queue.send({"key": key, "etag": info.etag,
                                                "version_id": info.version_id}))
    assert report["retrain"]["status"] == "requested", report["retrain"]
    assert report["retrain"]["labelled_rows_added"] == 200
    data = list(csv.DictReader(io.StringIO(b.ctx.store.get(announced[0]).decode())))
    added = data[-200:]
    assert added[0]["since"] == "2024-02-29T12:00:00Z"  # UTC, as the model saw it
    assert all(parse_days(r["since"]) is not None for r in added)
    assert {r["flag"] for r in added} <= {"0", "1"} and added[0]["cid"] == ""
    results = run_once(b)
    assert results[0]["status"] == "validated", results[0]
    assert results[-1]["status"] in ("registered", "rejected"), results[-1]
