"""Scheduled monitoring: drift of the captured requests against the champion's training
profile, prediction drift, live quality from late labels, a report and an alert."""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import timedelta
from typing import Any

from mlops_kit.core import layout
from mlops_kit.core.capture import CAPTURE_PREFIX
from mlops_kit.core.spec import check_name, parse_spec

log = logging.getLogger("mlops_kit.monitoring")


def _hour_prefixes(model: str, start, end) -> list[str]:
    out, t = [], start.replace(minute=0, second=0, microsecond=0)
    while t <= end:
        out.append(f"{CAPTURE_PREFIX}{model}/{t:%Y-%m-%d}/{t:%H}/")
        t += timedelta(hours=1)
    return out


def iter_captures(ctx, model: str, start, end):
    """Captured rows in [start, end], listing only the hour partitions of the window."""
    for prefix in _hour_prefixes(model, start, end):
        for info in ctx.store.list(prefix):
            with ctx.store.open(info.key) as f:
                for line in io.TextIOWrapper(f, encoding="utf-8"):
                    if line.strip():
                        yield json.loads(line)


def load_labels(ctx, model: str, target: str) -> dict[str, Any]:
    labels: dict[str, Any] = {}
    for info in ctx.store.list(f"{layout.LABELS}{model}/"):
        if not info.key.endswith(".csv"):
            continue
        with ctx.store.open(info.key) as f:
            for row in csv.DictReader(io.TextIOWrapper(f, encoding="utf-8-sig")):
                rid = row.get("request_id") or row.get("id")
                if rid and row.get(target) not in (None, ""):
                    labels[rid] = row[target]
    return labels


def ingest_labels(ctx, model: str, key: str) -> dict[str, Any]:
    check_name(model)
    return {"status": "labels_received", "model": model, "key": key}


def run_monitor(ctx, model: str, *, window_hours: float | None = None) -> dict[str, Any]:
    from mlops_kit.core.drift import feature_drift, prediction_drift

    version = ctx.registry.champion_version(model)
    if version is None:
        return {"status": "skipped", "model": model, "reason": "no champion"}
    prefix = layout.model_prefix(model, version)
    spec = parse_spec(json.loads(ctx.store.get(prefix + "spec.json")))
    profile = json.loads(ctx.store.get(prefix + "profile.json"))
    end = ctx.clock.now()
    start = end - timedelta(hours=window_hours or spec.monitoring.window_hours)
    columns: dict[str, list] = {n: [] for n in spec.feature_names}
    predictions: list = []
    ids: list[str] = []
    for row in iter_captures(ctx, model, start, end):
        if row.get("version") != version or row.get("role") == "shadow":
            continue
        for n in spec.feature_names:
            columns[n].append(row["features"].get(n))
        predictions.append(row.get("prediction"))
        ids.append(row.get("id"))
    rows = len(predictions)
    report: dict[str, Any] = {
        "model": model, "version": version, "window": {"start": start.isoformat(),
                                                       "end": end.isoformat()},
        "rows": rows, "generated_at": end.isoformat(),
    }
    if rows < spec.monitoring.min_rows:
        report.update(status="insufficient_data", drifted=False,
                      reason=f"{rows} captured rows < monitoring.min_rows {spec.monitoring.min_rows}")
    else:
        drift = feature_drift(profile, columns, spec)
        pred = prediction_drift(profile.get("predictions", {}), predictions) \
            if profile.get("predictions") else {"drifted": False}
        report.update(status="ok", drift=drift, prediction_drift=pred,
                      drifted=bool(drift["drifted"] or pred.get("drifted")))
    stamp = end.strftime("%Y%m%dT%H%M%S")
    key = f"{layout.REPORTS}{model}/monitoring/{stamp}.json"
    ctx.store.put(key, json.dumps(report, indent=2, default=str).encode(),
                  content_type="application/json")
    report["report_key"] = key
    if report.get("drifted"):
        names = report["drift"].get("drifted_features", [])
        ctx.notifier.publish(
            f"mlops-kit ALERT: drift on {model} v{version}",
            {"event": "drift", "model": model, "version": version, "report_key": key,
             "drifted_features": names, "prediction_drift": report["prediction_drift"].get("drifted")},
        )
    return report
