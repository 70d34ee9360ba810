"""Scheduled monitoring of one model: the captured requests of a time window against the
champion's training profile (feature drift, missing and out-of-range rates, prediction drift),
live quality from late labels, an alert, an optional retrain, and a report (JSON + HTML).

Bounded cost: captures are read hour partition by hour partition, one columnar capture object
(core.capture.codec) at a time, and fed as column chunks to streaming accumulators
(core.drift); labels are held as numpy arrays (64-bit join keys + labels); live metrics keep
at most MAX_LABELLED_ROWS labelled rows.
numpy only (no scikit-learn, pandas or pyarrow): this runs in the light monitor function.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import numpy as np

from mlops_kit.core import layout
from mlops_kit.core.capture.chunks import take
from mlops_kit.core.capture.reader import iter_capture_chunks, version_role_counts
from mlops_kit.core.context import Context, load_spec
from mlops_kit.core.monitoring.drift import FeatureDriftAccumulator, PredictionAccumulator
from mlops_kit.core.monitoring.labels import LabelIndex
from mlops_kit.core.monitoring.quality import Quality, quality_check
from mlops_kit.core.monitoring.report_html import render_report
from mlops_kit.core.monitoring.retrain import Announce, maybe_retrain
from mlops_kit.core.monitoring.trend import trend_entry
from mlops_kit.core.serving.health import over_threshold, read_health
from mlops_kit.core.spec import ModelSpec, parse_spec
from mlops_kit.errors import MlopsKitError, describe

__all__ = ["monitor_all", "run_monitor"]

log = logging.getLogger("mlops_kit.monitoring")


# -- every model ---------------------------------------------------------------------------
SUMMARY_KEYS = ("model", "version", "status", "rows", "drifted", "report_key", "reason",
                "summary")


def monitor_all(ctx: Context, models: Iterable[str] | None = None, *, announce: Announce | None = None,
                on_report: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """The scheduled run: every model (or `models`), each isolated from the others. A model
    whose monitoring fails (a bad artifact, a bug) is listed in `errors` with the reason and
    one alert names them all; the other models are monitored and reported as usual."""
    reports: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for model in list(ctx.registry.list_models() if models is None else models):
        try:
            report = run_monitor(ctx, model, announce=announce)
        except Exception as exc:  # noqa: BLE001 - one model never stops the others
            if isinstance(exc, MlopsKitError):
                log.warning("monitoring %s failed: %s", model, exc.message)
            else:
                log.error("monitoring %s crashed: %s", model, describe(exc), exc_info=exc)
            errors.append({"model": model, "error": describe(exc),
                           "error_type": type(exc).__name__})
            continue
        if on_report is not None:
            on_report(report)
        reports.append({k: report.get(k) for k in SUMMARY_KEYS})
    if errors:
        ctx.notifier.publish(
            f"mlops-kit ALERT: monitoring failed for {len(errors)} of "
            f"{len(errors) + len(reports)} models",
            {"event": "monitoring_failed", "errors": errors,
             "monitored": [r["model"] for r in reports]})
    return {"status": "partial" if errors else "ok", "reports": reports, "errors": errors}


# -- the run ------------------------------------------------------------------------------
def run_monitor(ctx: Context, model: str, *, window_hours: float | None = None,
                announce: Announce | None = None) -> dict[str, Any]:
    """Monitor the champion of `model` over the last window. `announce(key, info)` is called
    after a retrain dataset is written: the local runtime passes one that queues validation;
    on a cloud the object-created notification of datasets/ does the same."""
    version = ctx.registry.champion_version(model)
    if version is None:
        return {"status": "skipped", "model": model, "reason": "no champion"}
    prefix = layout.model_prefix(model, version)
    spec, policy_source = governing_spec(ctx, model,
                                         parse_spec(json.loads(ctx.store.get(prefix + "spec.json"))))
    profile = json.loads(ctx.store.get(prefix + "profile.json"))
    record = ctx.registry.get_version(model, version)
    end = ctx.clock.now()
    hours = window_hours or spec.monitoring.window_hours
    start = end - timedelta(hours=hours)
    numeric_target = not spec.task.is_classification

    labels = LabelIndex.load(ctx, model, spec.target, numeric=numeric_target)
    features = FeatureDriftAccumulator(profile, spec, now_days=end.timestamp() / 86400)
    preds = (PredictionAccumulator(profile["predictions"], spec.monitoring.threshold)
             if profile.get("predictions") else None)
    quality: dict[str, Quality] = {}
    counts: dict[str, dict[str, int]] = {}
    stats: dict[str, int] = {}
    for chunk in iter_capture_chunks(ctx, model, start, end, stats):
        version_role_counts(chunk, counts)
        served_mask = (chunk.version == version) & ~chunk.shadow
        served = chunk if served_mask.all() else chunk.select(served_mask)
        if served.n:
            features.add_columns(served.features, served.n)
            if preds is not None:
                preds.add(served.prediction)
        if len(labels):
            found, values = labels.lookup_keys(chunk.keys())
            if found.any():
                idx = np.flatnonzero(found)
                groups = chunk.version[idx] * 2 + chunk.shadow[idx]
                for g in np.unique(groups).tolist():
                    key = f"{g // 2}{'/shadow' if g % 2 else ''}"
                    pick = groups == g
                    rows_g = idx[pick]
                    proba = chunk.probabilities
                    quality.setdefault(key, Quality(numeric_target)).add(
                        take(chunk.prediction, rows_g),
                        None if proba is None else proba[rows_g], values[pick])

    rows = features.rows
    report: dict[str, Any] = {
        "model": model, "version": version, "generated_at": end.isoformat(),
        "window": {"start": start.isoformat(), "end": end.isoformat(), "hours": hours},
        "rows": rows, "rows_by_version": counts,
        "capture_objects": stats.get("objects", 0), "capture_bytes": stats.get("bytes", 0),
        "capture_objects_unreadable": stats.get("unreadable", 0),
        "policy": spec.monitoring.model_dump(mode="json"), "policy_source": policy_source,
        "lineage": _lineage(ctx, model, version, record),
    }
    report["quality"] = _quality_report(ctx, spec, model, record, quality, labels, counts,
                                        version)
    alerts: list[dict[str, Any]] = []
    if rows < spec.monitoring.min_rows:
        report.update(status="insufficient_data", drifted=False,
                      reason=f"{rows} captured rows < monitoring.min_rows "
                             f"{spec.monitoring.min_rows}")
        report["drift"] = features.result()
    else:
        drift = features.result()
        pred = preds.result() if preds is not None else {"drifted": False, "reasons": []}
        report.update(status="ok", drift=drift, prediction_drift=pred,
                      drifted=bool(drift["drifted"] or pred.get("drifted")))
        for name in drift["drifted_features"]:
            f = drift["features"][name]
            alerts.append({"kind": "feature_drift", "feature": name, "reasons": f["reasons"]})
        if pred.get("drifted"):
            alerts.append({"kind": "prediction_drift", "reasons": pred["reasons"]})
    if report["quality"]["alert"]:
        alerts.append({"kind": "quality", "reasons": report["quality"]["reasons"]})
    report["serving_health"] = read_health(ctx.store, model, start, end)
    errors_5xx = [why for v in report["serving_health"]["versions"]
                  if v.isdigit() and (why := over_threshold(
                      report["serving_health"], v, spec.monitoring.max_5xx_rate))]
    if errors_5xx:
        alerts.append({"kind": "serving_5xx", "reasons": errors_5xx})
    report["alerts"] = alerts
    report["summary"] = _summary(report)

    stamp = end.strftime("%Y%m%dT%H%M%S")
    base = layout.reports_prefix(model, "monitoring")
    report.update(report_key=f"{base}{stamp}.json", html_key=f"{base}{stamp}.html",
                  latest_key=f"{base}latest.json")
    report["retrain"] = maybe_retrain(ctx, spec, report, labels, start, end, announce)
    _store_report(ctx, report, base)
    # the registry's trend item last, like every registry entry: it points at stored reports
    ctx.registry.record_monitoring(model, trend_entry(report))
    if alerts:
        _alert(ctx, report)
    return report


def governing_spec(ctx: Context, model: str, frozen: ModelSpec) -> tuple[ModelSpec, str]:
    """The champion's spec (its features, target and task: what it was trained on) with the
    monitoring policy of specs/<model>.yaml as applied now: `spec apply` takes effect at the
    next run, not at the next champion. The champion's copy governs when the current spec is
    missing, invalid or for another target or task (it says so)."""
    try:
        current = load_spec(ctx.store, model)
    except MlopsKitError as exc:
        return frozen, f"the champion's frozen spec (specs/{model}: {exc.message})"
    if (current.task, current.target) != (frozen.task, frozen.target):
        return frozen, ("the champion's frozen spec (specs/ now has another task or target: "
                        "it applies to the versions it trains)")
    return frozen.model_copy(update={"monitoring": current.monitoring}), \
        f"specs/{model} as applied now"


def _lineage(ctx: Context, model: str, version: int, record: dict) -> dict[str, Any]:
    alias = ctx.registry.get_alias(model) or {}
    keep = ("status", "sha256", "artifact_key", "metrics", "parity", "params", "classes",
            "positive_class",
            "task", "rows_train", "rows_holdout", "created_at", "completed_at", "lineage")
    return {"version": version, "champion_since": alias.get("updated_at") or alias.get("at"),
            **{k: record.get(k) for k in keep if k in record}}


def _quality_report(ctx: Context, spec, model, record, quality, labels: LabelIndex, counts,
                    version) -> dict:
    mon = spec.monitoring
    by_version: dict[str, Any] = {}
    for key, q in sorted(quality.items()):
        v, _, role = key.partition("/")
        classes = record.get("classes")
        if v != str(version):
            try:
                classes = ctx.registry.get_version(model, int(v)).get("classes")
            except Exception:  # noqa: BLE001 - an unknown version still gets label-free metrics
                classes = None
        rows = counts.get(v, {}).get(role or "served", 0)
        by_version[key] = {"version": int(v) if v.isdigit() else v, "role": role or "served",
                           "rows": rows, "labelled": q.labelled,
                           "coverage": q.labelled / rows if rows else 0.0,
                           "metrics": q.metrics(spec.task.value, classes, spec.positive_class),
                           "sampled": q.labelled > q.kept}
    champion = by_version.get(str(version))
    window_rows = sum(sum(c.values()) for c in counts.values())
    matched = sum(q.labelled for q in quality.values())
    alert, reasons = quality_check(spec, champion)
    return {
        "metric": mon.quality_metric or spec.promotion.metric, "minimum": mon.quality_minimum,
        "training_metrics": record.get("metrics") or {},
        "labels": {"files": labels.files, "labels": len(labels), "rows_read": labels.read,
                   "matched_rows": matched, "window_rows": window_rows,
                   "coverage": matched / window_rows if window_rows else 0.0,
                   "labels_matched": int(labels.hit.sum()),
                   "labels_unmatched": int(len(labels) - labels.hit.sum()),
                   **({"skipped_files": labels.skipped} if labels.skipped else {})},
        "by_version": by_version, "champion": champion, "alert": alert, "reasons": reasons,
    }


def _summary(report: dict) -> str:
    head = f"{report['model']} v{report['version']}, {report['rows']:,} rows in " \
           f"{report['window']['hours']:g}h"
    if report["status"] != "ok":
        parts = [report.get("reason", report["status"])]
    else:
        parts = []
        drift = report["drift"]
        for name in drift["drifted_features"]:
            f = drift["features"][name]
            parts.append(f"{name}: {f['reasons'][0] if f['reasons'] else 'drifted'}")
        if report["prediction_drift"].get("drifted"):
            parts.append(f"predictions: {report['prediction_drift']['reasons'][0]}")
        if not parts:
            parts.append("no drift")
    q = report["quality"]
    champion = q.get("champion")
    parts.extend(r for a in report.get("alerts") or [] if a["kind"] == "serving_5xx"
                 for r in a["reasons"])
    if q["reasons"]:
        parts.extend(q["reasons"])
    elif champion and champion["metrics"].get(q["metric"]) is not None:
        parts.append(f"live {q['metric']} {champion['metrics'][q['metric']]:.3f} on "
                     f"{champion['labelled']} labelled rows")
    return f"{head}: " + "; ".join(parts)


def _alert(ctx: Context, report: dict) -> None:
    kinds = sorted({a["kind"] for a in report["alerts"]})
    what = {("quality",): "quality", ("serving_5xx",): "serving errors"}.get(tuple(kinds),
                                                                           "drift")
    ctx.notifier.publish(
        f"mlops-kit ALERT: {what} on {report['model']} v{report['version']}",
        {"event": what, "model": report["model"], "version": report["version"],
         "summary": report["summary"], "kinds": kinds, "report_key": report["report_key"],
         "html_key": report["html_key"],
         "drifted_features": report.get("drift", {}).get("drifted_features", []),
         "prediction_drift": bool(report.get("prediction_drift", {}).get("drifted")),
         "quality": report["quality"]["reasons"], "retrain": report["retrain"].get("status"),
         "serving_5xx": [r for a in report["alerts"] if a["kind"] == "serving_5xx"
                         for r in a["reasons"]]},
    )


def _store_report(ctx: Context, report: dict, base: str) -> None:


    body = json.dumps(report, indent=2, default=str).encode()
    html = render_report(report).encode()
    ctx.store.put(report["report_key"], body, content_type="application/json")
    ctx.store.put(report["html_key"], html, content_type="text/html; charset=utf-8")
    # latest.*: full copies written last, so `mlops-kit report MODEL` reads one object
    ctx.store.put(f"{base}latest.json", body, content_type="application/json")
    ctx.store.put(f"{base}latest.html", html, content_type="text/html; charset=utf-8")


