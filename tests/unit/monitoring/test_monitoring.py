"""Monitoring on the local backend: planted drift named, a quiet control, labels joined, alerts,
cooldown-limited retrain, insufficient data, a bounded-memory window of 100k rows, EMF."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import tracemalloc
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from mlops_kit.adapters.aws.emf import emf_metrics
from mlops_kit.bootstrap import local_backend
from mlops_kit.clock import FixedClock
from mlops_kit.core.layout import capture_hour_prefix
from mlops_kit.core.metrics import compute_metrics
from mlops_kit.core.monitoring.labels import ingest_labels
from mlops_kit.core.monitoring.usecase import run_monitor
from mlops_kit.errors import ConditionFailed
from tests.support import FAST_SPEC, apply_spec, feature_records

T0 = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)


@pytest.fixture
def mon(trained):
    """The trained workspace (churn v1 champion) driven by a settable clock."""
    return local_backend(trained.settings, clock=FixedClock(T0))


def set_policy(b, **monitoring):
    """Change the monitoring policy (the monitor reads the current spec's; the champion's
    copy is changed too, as before issue 23)."""
    key = "models/churn/000001/spec.json"
    spec = json.loads(b.ctx.store.get(key))
    spec["monitoring"].update(monitoring)
    b.ctx.store.put(key, json.dumps(spec).encode())
    apply_spec(b, {**FAST_SPEC, "monitoring": spec["monitoring"]})


def serve(b, records, *, batch=50, prefix="req"):
    """Real predictions through the serving path, captured at the clock's time."""
    svc = b.service(capture=True)
    outs = []
    for i in range(0, len(records), batch):
        outs.append(svc.predict("churn", records[i:i + batch], request_id=f"{prefix}{i // batch}"))
    svc.capture.flush()
    return outs


def notes(b):
    return [n for n in b.ctx.notifier.messages() if n["message"].get("event") in
            ("drift", "quality")]


def test_planted_drift_is_detected_named_alerted_and_reported(mon):
    serve(mon, feature_records(1500, seed=3, drift=1.0))
    r = run_monitor(mon.ctx, "churn", window_hours=1)
    assert r["status"] == "ok" and r["rows"] == 1500 and r["drifted"]
    drift = r["drift"]
    assert {"monthly_charges", "plan", "payment", "support_calls"} <= set(drift["drifted_features"])
    assert {"age", "region", "tenure_months"}.isdisjoint(drift["drifted_features"])
    f = drift["features"]
    assert f["monthly_charges"]["psi"] > 1 and f["monthly_charges"]["distribution_drifted"]
    assert f["plan"]["new_categories"] == ["enterprise"]
    # missing rate is its own signal: payment's distribution of values did not move
    assert "payment" in drift["missing_rate_alerts"] and not f["payment"]["distribution_drifted"]
    assert f["payment"]["null_rate_cur"] > 0.2
    assert r["prediction_drift"]["drifted"]
    assert {a["kind"] for a in r["alerts"]} == {"feature_drift", "prediction_drift"}
    # the alert: one notification with a human summary naming the features
    [note] = notes(mon)
    assert note["subject"] == "mlops-kit ALERT: drift on churn v1"
    msg = note["message"]
    assert "monthly_charges" in msg["summary"] and "missing rate rose" in msg["summary"]
    assert set(msg["drifted_features"]) == set(drift["drifted_features"])
    # stored: JSON + HTML per run, and latest.* copies
    store = mon.ctx.store
    assert r["report_key"] == "reports/churn/monitoring/20260302T123000.json"
    assert json.loads(store.get(r["report_key"]))["drift"]["drifted_features"] == \
        drift["drifted_features"]
    assert json.loads(store.get("reports/churn/monitoring/latest.json"))["report_key"] == \
        r["report_key"]
    html = store.get(r["html_key"]).decode()
    assert html.count('<svg class="chart"') == 7 + 1  # 7 features + predictions
    assert store.get("reports/churn/monitoring/latest.html").decode() == html


def test_no_drift_control_stays_quiet(mon):
    serve(mon, feature_records(1500, seed=99, drift=0.0))
    r = run_monitor(mon.ctx, "churn", window_hours=1)
    assert r["status"] == "ok" and r["rows"] == 1500
    assert not r["drifted"] and r["drift"]["drifted_features"] == [] and r["alerts"] == []
    assert r["drift"]["missing_rate_alerts"] == [] and r["drift"]["out_of_range_alerts"] == []
    assert all(f["psi"] < 0.05 for f in r["drift"]["features"].values())
    assert not r["prediction_drift"]["drifted"]
    assert notes(mon) == [] and "no drift" in r["summary"]


def test_window_reads_only_its_rows(mon):
    serve(mon, feature_records(200, seed=1, drift=1.0), prefix="old")  # 12:30, drifted
    mon.ctx.clock.advance(hours=3)
    serve(mon, feature_records(300, seed=2), prefix="new")  # 15:30, clean
    mon.ctx.clock.advance(minutes=20)
    r = run_monitor(mon.ctx, "churn", window_hours=1)  # 14:50 .. 15:50
    assert r["rows"] == 300 and not r["drifted"] and r["capture_objects"] == 1
    wide = run_monitor(mon.ctx, "churn", window_hours=4)
    assert wide["rows"] == 500 and wide["drifted"]


def test_insufficient_data_is_reported_not_alerted(mon):
    serve(mon, feature_records(10, seed=3, drift=1.0))
    r = run_monitor(mon.ctx, "churn", window_hours=1)
    assert r["status"] == "insufficient_data" and not r["drifted"] and r["rows"] == 10
    assert "min_rows 50" in r["reason"] and r["alerts"] == [] and notes(mon) == []
    assert mon.ctx.store.exists(r["report_key"]) and mon.ctx.store.exists(r["html_key"])
    assert emf_metrics(r)["InsufficientData"] == 1.0


def write_labels(b, name, pairs):
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["request_id", "churned"])
    w.writerows(pairs)
    b.ctx.store.put(f"labels/churn/{name}", buf.getvalue().encode())


def test_labels_join_by_row_id_and_give_known_metrics(mon):
    outs = serve(mon, feature_records(400, seed=5), batch=40)
    rows = [(f"req{k}#{i}", p, prob) for k, out in enumerate(outs)
            for i, (p, prob) in enumerate(zip(out["predictions"], out["probabilities"]))]
    labelled = rows[:300]  # 100 captured rows stay unlabelled and are ignored
    truth = [p if i % 5 else 1 - p for i, (_, p, _) in enumerate(labelled)]  # 80% agree
    pairs = [(rid, y) for (rid, _, _), y in zip(labelled, truth)]
    write_labels(mon, "a.csv", [(rid, 1 - y) for rid, y in pairs[:50]] +  # overridden below
                 [("nobody#1", 1), ("nobody#2", 0)])  # labels of requests not in the window
    write_labels(mon, "b.csv", pairs)
    got = ingest_labels(mon.ctx, "churn", "labels/churn/b.csv")
    assert {k: got[k] for k in ("status", "model", "key", "rows")} == {
        "status": "labels_received", "model": "churn", "key": "labels/churn/b.csv", "rows": 300}
    # the 50 labels b.csv overrides are said, never silently (issue 23 item 6)
    assert got["conflicts"]["earlier_files"] == 50 and "labels win" in got["summary"]

    r = run_monitor(mon.ctx, "churn", window_hours=1)
    q = r["quality"]
    assert q["labels"] == {"files": 2, "labels": 302, "rows_read": 352, "matched_rows": 300,
                           "window_rows": 400, "coverage": 0.75, "labels_matched": 300,
                           "labels_unmatched": 2}
    champ = q["champion"]
    assert champ["version"] == 1 and champ["labelled"] == 300 and champ["coverage"] == 0.75
    assert champ["metrics"]["accuracy"] == pytest.approx(0.8)
    expected = compute_metrics("binary_classification", np.array(truth),
                               np.array([p for _, p, _ in labelled]),
                               np.array([prob for _, _, prob in labelled]), [0, 1])
    assert champ["metrics"] == pytest.approx(expected)
    assert set(champ["metrics"]) == set(q["training_metrics"])  # same names as training
    assert emf_metrics(r)["LiveAccuracy"] == pytest.approx(0.8)


def test_live_quality_below_the_minimum_alerts(mon):
    set_policy(mon, quality_metric="accuracy", quality_minimum=0.9)
    outs = serve(mon, feature_records(200, seed=5), batch=1)
    # every label disagrees with the prediction: accuracy 0
    write_labels(mon, "l.csv", [(f"req{k}", 1 - o["predictions"][0]) for k, o in enumerate(outs)])
    r = run_monitor(mon.ctx, "churn", window_hours=1)
    assert not r["drifted"] and r["quality"]["alert"]
    assert r["quality"]["reasons"] == ["live accuracy 0.000 < 0.9 on 200 labelled rows"]
    [note] = notes(mon)
    assert note["subject"] == "mlops-kit ALERT: quality on churn v1"
    assert "live accuracy 0.000 < 0.9" in note["message"]["summary"]


def test_labels_without_the_target_column_are_quarantined(mon):
    mon.ctx.store.put("labels/churn/bad.csv", b"request_id,label\nr1,1\n")
    out = ingest_labels(mon.ctx, "churn", "labels/churn/bad.csv")
    assert out["status"] == "quarantined" and "'churned'" in out["reason"]
    report = json.loads(mon.ctx.store.get(out["quarantine_report_key"]))
    assert report["rules"][0]["column"] == "churned" and "'churned'" in report["summary"]


def test_retrain_on_drift_respects_the_cooldown(mon):
    set_policy(mon, retrain_on_drift=True, retrain_cooldown_hours=6)
    announced = []

    def announce(key, info):
        announced.append(key)
        mon.validate_queue.send({"key": key, "etag": info.etag, "version_id": info.version_id})

    outs = serve(mon, feature_records(300, seed=3, drift=1.0), batch=1)
    write_labels(mon, "l.csv", [(f"req{k}", o["predictions"][0]) for k, o in
                                enumerate(outs[:120])])
    first = run_monitor(mon.ctx, "churn", window_hours=1, announce=announce)
    assert first["drifted"] and first["retrain"]["status"] == "requested"
    key = first["retrain"]["dataset_key"]
    assert key == "datasets/churn/retrain-20260302T123000.csv" and announced == [key]
    assert first["retrain"]["labelled_rows_added"] == 120
    data = list(csv.DictReader(io.StringIO(mon.ctx.store.get(key).decode())))
    base = list(csv.DictReader(io.StringIO(mon.ctx.store.get(
        first["lineage"]["lineage"]["dataset_key"]).decode())))
    assert len(data) == len(base) + 120 and data[:len(base)] == base
    assert {r["plan"] for r in data[len(base):]} >= {"enterprise"}
    claim = mon.ctx.table.get("MONITOR#churn", "RETRAIN")
    assert claim["dataset_key"] == key and claim["last_at"] == T0.isoformat()

    # still drifting one hour later: within the cooldown, nothing is written or enqueued
    mon.ctx.clock.advance(hours=1)
    serve(mon, feature_records(300, seed=4, drift=1.0), prefix="h2")
    second = run_monitor(mon.ctx, "churn", window_hours=1, announce=announce)
    assert second["drifted"] and second["retrain"]["status"] == "cooldown"
    assert second["retrain"]["until"] == (T0 + timedelta(hours=6)).isoformat()
    assert announced == [key] and len(list(mon.ctx.store.list("datasets/churn/retrain-"))) == 1

    # after the cooldown it retrains again
    mon.ctx.clock.advance(hours=6)
    serve(mon, feature_records(300, seed=6, drift=1.0), prefix="h8")
    third = run_monitor(mon.ctx, "churn", window_hours=1, announce=announce)
    assert third["retrain"]["status"] == "requested" and len(announced) == 2

    # the announced dataset takes the ordinary path: validation -> training -> a new version
    from mlops_kit.local.worker import run_once

    results = run_once(mon)
    trained = [r for r in results if "version" in r and r["status"] != "unchanged"]
    assert trained and all(r["status"] in ("registered", "rejected") for r in trained)
    # the third window's rows carry no labels: its retrain dataset is the champion's own
    # data, which makes no new version (issue 23 item 4), and says so
    unchanged = [r for r in results if r["status"] == "unchanged"]
    assert [(r["version"], r["dataset_key"]) for r in unchanged] == [(1, announced[1])]
    assert third["retrain"]["labelled_rows_added"] == 0
    lineages = [mon.ctx.registry.get_version("churn", r["version"])["lineage"]["dataset_key"]
                for r in trained]
    assert set(lineages) == {announced[0]}


def test_two_concurrent_monitors_retrain_once(mon):
    set_policy(mon, retrain_on_drift=True)
    serve(mon, feature_records(300, seed=3, drift=1.0))
    table = mon.ctx.table

    class StaleRead:
        """A second monitor that read the cooldown item before the first one wrote it."""

        def __getattr__(self, name):
            return getattr(table, name)

        def get(self, pk, sk):
            return None if pk.startswith("MONITOR#") else table.get(pk, sk)

    first = run_monitor(mon.ctx, "churn", window_hours=1)
    mon.ctx.table = StaleRead()
    try:
        second = run_monitor(mon.ctx, "churn", window_hours=1)
    finally:
        mon.ctx.table = table
    assert first["retrain"]["status"] == "requested"
    assert second["retrain"] == {"status": "cooldown",
                                 "reason": "another monitoring run claimed the retrain"}
    with pytest.raises(ConditionFailed):
        table.put("MONITOR#churn", "RETRAIN", {"last_at": "x"}, __import__(
            "mlops_kit.ports", fromlist=["Absent"]).Absent())


def write_synthetic_captures(b, n, *, per_object=5000, labelled_every=10):
    """n captured rows of the churn model at T0's hour, in objects of per_object rows (the
    capture buffer's batching), without running the model (the monitor does not care)."""
    from mlops_kit.core.synthetic import churn_columns

    prefix = capture_hour_prefix("churn", T0)
    labels = io.StringIO()
    lw = csv.writer(labels)
    lw.writerow(["request_id", "churned"])
    at = T0.isoformat()
    names = ["tenure_months", "monthly_charges", "support_calls", "age", "plan", "region",
             "payment"]
    for start in range(0, n, per_object):
        cols = churn_columns(min(per_object, n - start), seed=start)
        lines = []
        for i in range(len(cols["age"])):
            rid = f"r{start + i}"
            p = float(cols["churned"][i]) * 0.6 + 0.2
            lines.append(json.dumps({
                "id": rid, "request_id": rid, "at": at, "model": "churn", "version": 1,
                "role": "served", "latency_ms": 1.0,
                "features": {k: cols[k][i] for k in names},
                "prediction": int(p > 0.5), "probabilities": [1 - p, p]},
                separators=(",", ":")))
            if (start + i) % labelled_every == 0:
                lw.writerow([rid, cols["churned"][i]])
        b.ctx.store.put(f"{prefix}{start:08d}.jsonl", ("\n".join(lines) + "\n").encode())
    b.ctx.store.put("labels/churn/bulk.csv", labels.getvalue().encode())


@pytest.mark.slow
def test_100k_rows_in_bounded_memory(mon):
    n = 100_000
    write_synthetic_captures(mon, n)
    size = sum(i.size for i in mon.ctx.store.list("captures/churn/"))
    tracemalloc.start()
    try:
        r = run_monitor(mon.ctx, "churn", window_hours=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r["rows"] == n and r["capture_objects"] == 20 and r["status"] == "ok"
    assert r["quality"]["champion"]["labelled"] == n // 10
    assert r["quality"]["champion"]["metrics"]["accuracy"] == 1.0
    # the rows are ~27 MB as JSON (several times that as Python objects); the monitor holds
    # one chunk, the accumulators and the labels
    # (size / 2.5: first-use imports inside the traced region vary with test order)
    assert size > 25e6 and peak < size / 2.5, (size, peak)


def test_emf_document_shape(mon):
    serve(mon, feature_records(300, seed=3, drift=1.0))
    r = run_monitor(mon.ctx, "churn", window_hours=1)
    doc = emf_metrics(r)
    json.dumps(doc, allow_nan=False)  # CloudWatch rejects NaN; the document must be plain JSON
    [directive] = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "mlops-kit" and directive["Dimensions"] == [["Model"]]
    assert doc["_aws"]["Timestamp"] == int(T0.timestamp() * 1000)
    names = [m["Name"] for m in directive["Metrics"]]
    assert {"DriftedFeatures", "MaxPSI", "CapturedRows", "PredictionPSI", "Alerts"} <= set(names)
    assert all(isinstance(doc[n], float) for n in names)  # every declared metric has a value
    assert doc["Model"] == "churn" and doc["DriftedFeatures"] == len(r["drift"]["drifted_features"])
    assert doc["MaxPSI"] == max(f["psi"] for f in r["drift"]["features"].values()) > 1
    assert not any(n.startswith("Live") for n in names)  # no labels, no live metrics
    [stacked] = emf_metrics(r, stack="mlk-prod")["_aws"]["CloudWatchMetrics"]
    assert stacked["Dimensions"] == [["Stack", "Model"]]
    assert emf_metrics(r, stack="mlk-prod")["Stack"] == "mlk-prod"


def test_monitoring_imports_no_training_libraries():
    code = ("import sys, mlops_kit.core.monitoring.usecase, mlops_kit.core.monitoring.report_html; "
            "print(sorted(m for m in ('sklearn', 'scipy', 'pandas', 'pyarrow', 'boto3') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_each_run_leaves_a_trend_item_in_the_registry(mon):
    serve(mon, feature_records(300, seed=3, drift=1.0))
    r = run_monitor(mon.ctx, "churn", window_hours=1)
    [item] = mon.ctx.registry.monitoring_runs("churn")
    assert item["at"] == r["generated_at"] and item["version"] == 1 and item["drifted"]
    assert item["html_key"] == r["html_key"] and item["rows"] == 300
    assert set(item["features"]) == set(r["drift"]["features"])
    for name, f in r["drift"]["features"].items():
        assert item["features"][name]["psi"] == pytest.approx(f["psi"])
        assert item["features"][name]["drifted"] == f["drifted"]
    assert item["prediction_psi"] == pytest.approx(r["prediction_drift"]["psi"])
    assert item["threshold"] == 0.2 and "feature_drift" in item["alerts"]
    assert item["quality"]["value"] is None and item["quality"]["labelled"] == 0  # no labels
    mon.ctx.clock.advance(hours=3)
    run_monitor(mon.ctx, "churn", window_hours=1)  # an empty window: insufficient data
    runs = mon.ctx.registry.monitoring_runs("churn")
    assert [x["status"] for x in runs] == ["ok", "insufficient_data"]
