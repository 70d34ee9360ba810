"""Scheduled monitoring of one model: the captured requests of a time window against the
champion's training profile (feature drift, missing and out-of-range rates, prediction drift),
live quality from late labels, an alert, an optional retrain, and a report (JSON + HTML).

Bounded cost: captures are read hour partition by hour partition, row by row, and fed in
chunks of CHUNK_ROWS to streaming accumulators (core.drift); labels are held as two numpy
arrays (64-bit id hash + label); live metrics keep at most MAX_LABELLED_ROWS labelled rows.
numpy only (no scikit-learn, pandas or pyarrow): this runs in the light monitor function.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from mlops_kit.core import layout
from mlops_kit.core.serving.capture import CAPTURE_PREFIX
from mlops_kit.core.monitoring.drift import FeatureDriftAccumulator, PredictionAccumulator, category_key
from mlops_kit.core.metrics import compute_metrics
from mlops_kit.core.spec import LOWER_IS_BETTER, ModelSpec, check_name, parse_spec
from mlops_kit.errors import ConditionFailed
from mlops_kit.ports import Absent, Equals, ObjectInfo

__all__ = ["LabelIndex", "emf_metrics", "ingest_labels", "iter_captures", "load_labels",
           "run_monitor"]

log = logging.getLogger("mlops_kit.monitoring")
CHUNK_ROWS = 1000
MAX_LABELLED_ROWS = 1_000_000
MONITOR_PK = "MONITOR#{model}"
RETRAIN_SK = "RETRAIN"
Announce = Callable[[str, ObjectInfo], None]


# -- captures -----------------------------------------------------------------------------
def _hour_prefixes(model: str, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
    out, t = [], start.replace(minute=0, second=0, microsecond=0)
    while t <= end:
        out.append((f"{CAPTURE_PREFIX}{model}/{t:%Y-%m-%d}/{t:%H}/", t))
        t += timedelta(hours=1)
    return out


def iter_captures(ctx, model: str, start: datetime, end: datetime,
                  stats: dict[str, int] | None = None) -> Iterator[dict]:
    """Captured rows with start <= at <= end, listing only the hour partitions of the window.
    Timestamps are parsed only in the two partial hours at the window's edges."""
    for prefix, hour in _hour_prefixes(model, start, end):
        inside = hour >= start and hour + timedelta(hours=1) <= end
        for info in ctx.store.list(prefix):
            if stats is not None:
                stats["objects"] = stats.get("objects", 0) + 1
                stats["bytes"] = stats.get("bytes", 0) + info.size
            with ctx.store.open(info.key) as f:
                for line in io.TextIOWrapper(f, encoding="utf-8"):
                    if not line.strip():
                        continue
                    row = json.loads(line)
                    if not inside:
                        try:
                            at = datetime.fromisoformat(row["at"])
                        except (KeyError, TypeError, ValueError):
                            continue
                        if at < start or at > end:
                            continue
                    yield row


def _chunks(rows: Iterator[dict], size: int = CHUNK_ROWS) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- labels -------------------------------------------------------------------------------
def _id_hash(ids: list[str]) -> np.ndarray:
    # Python's str hash: 64 bits, stable within the process that builds and probes the index.
    return np.fromiter((hash(i) for i in ids), dtype=np.int64, count=len(ids))


class LabelIndex:
    """Late ground truth keyed by captured row id (request_id, or request_id#i in a batch), as
    sorted 64-bit id hashes + labels: ~12 bytes per label. Later files win for a repeated id."""

    def __init__(self, hashes: np.ndarray, values: np.ndarray, files: int, read: int) -> None:
        self.hashes, self.values, self.files, self.read = hashes, values, files, read
        self.hit = np.zeros(hashes.size, dtype=bool)

    @classmethod
    def load(cls, ctx, model: str, target: str, *, numeric: bool) -> LabelIndex:
        hashes: list[np.ndarray] = []
        values: list[np.ndarray] = []
        files = read = 0
        for info in ctx.store.list(f"{layout.LABELS}{model}/"):
            if not info.key.endswith(".csv"):
                continue
            files += 1
            with ctx.store.open(info.key) as f:
                reader = csv.DictReader(io.TextIOWrapper(f, encoding="utf-8-sig"))
                ids: list[str] = []
                vals: list[Any] = []
                for row in reader:
                    rid = row.get("request_id") or row.get("id")
                    v = row.get(target)
                    if not rid or v is None or v.strip() == "":
                        continue
                    ids.append(rid.strip())
                    vals.append(_label_value(v, numeric))
                    if len(ids) >= CHUNK_ROWS * 10:
                        hashes.append(_id_hash(ids))
                        values.append(np.asarray(vals, dtype=np.float64 if numeric else object))
                        read += len(ids)
                        ids, vals = [], []
                if ids:
                    hashes.append(_id_hash(ids))
                    values.append(np.asarray(vals, dtype=np.float64 if numeric else object))
                    read += len(ids)
        if not hashes:
            return cls(np.empty(0, np.int64), np.empty(0, object), files, 0)
        h = np.concatenate(hashes)
        v = np.concatenate(values)
        # keep the last occurrence of each id, then sort by hash for searchsorted
        _, first_in_reversed = np.unique(h[::-1], return_index=True)
        keep = h.size - 1 - first_in_reversed
        order = np.argsort(h[keep], kind="stable")
        return cls(h[keep][order], v[keep][order], files, read)

    def __len__(self) -> int:
        return int(self.hashes.size)

    def lookup(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(mask of ids that have a label, their labels)."""
        if not self.hashes.size or not ids:
            return np.zeros(len(ids), dtype=bool), self.values[:0]
        h = _id_hash(ids)
        pos = np.minimum(np.searchsorted(self.hashes, h), self.hashes.size - 1)
        found = self.hashes[pos] == h
        self.hit[pos[found]] = True
        return found, self.values[pos[found]]


def _label_value(v: str, numeric: bool) -> Any:
    if numeric:
        try:
            return float(v)
        except ValueError:
            return math.nan
    return category_key(v.strip())


def load_labels(ctx, model: str, target: str) -> dict[str, Any]:
    """All labels as a dict (small label sets, tools and tests; monitoring uses LabelIndex)."""
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
    """A labels upload: check its header (request_id + the target column) and count rows.
    The labels are joined at the next monitoring run; nothing else happens now."""
    from mlops_kit.core.pipeline import load_spec

    check_name(model)
    target = load_spec(ctx.store, model).target
    rows = 0
    with ctx.store.open(key) as f:
        reader = csv.DictReader(io.TextIOWrapper(f, encoding="utf-8-sig"))
        header = reader.fieldnames or []
        missing = [c for c in ("request_id", target) if c not in header
                   and not (c == "request_id" and "id" in header)]
        if missing:
            reason = (f"{key}: labels need columns request_id and {target!r}; missing {missing} "
                      f"(header: {header})")
            ctx.notifier.publish(f"mlops-kit: labels for {model} rejected",
                                 {"event": "labels_rejected", "model": model, "key": key,
                                  "reason": reason})
            return {"status": "labels_rejected", "model": model, "key": key, "reason": reason}
        for row in reader:
            rows += bool(row.get(target) not in (None, ""))
    return {"status": "labels_received", "model": model, "key": key, "rows": rows}


# -- live quality -------------------------------------------------------------------------
class _Quality:
    """Labelled rows of one model version (bounded), turned into training-named metrics."""

    def __init__(self, numeric: bool) -> None:
        self.numeric = numeric
        self.y_true: list[np.ndarray] = []
        self.y_pred: list[np.ndarray] = []
        self.proba: list[np.ndarray] | None = []
        self.kept = self.labelled = 0

    def add(self, rows: list[dict], labels: np.ndarray) -> None:
        self.labelled += len(rows)
        room = MAX_LABELLED_ROWS - self.kept
        if room <= 0:
            return
        rows, labels = rows[:room], labels[:room]
        self.kept += len(rows)
        if self.numeric:
            self.y_true.append(labels.astype(np.float64))
            self.y_pred.append(np.array([_float(r.get("prediction")) for r in rows]))
            return
        self.y_true.append(labels.astype(object))
        self.y_pred.append(np.array([category_key(r.get("prediction")) for r in rows], object))
        probs = [r.get("probabilities") for r in rows]
        if self.proba is not None and all(isinstance(p, list) and p for p in probs) \
                and len({len(p) for p in probs}) == 1:
            self.proba.append(np.asarray(probs, dtype=np.float32))
        else:
            self.proba = None  # some rows without probabilities: no roc_auc / log_loss

    def metrics(self, task: str, classes: list | None) -> dict[str, float]:
        if not self.kept:
            return {}
        y_true, y_pred = np.concatenate(self.y_true), np.concatenate(self.y_pred)
        if self.numeric:
            ok = ~(np.isnan(y_true) | np.isnan(y_pred))
            return _finite(compute_metrics(task, y_true[ok], y_pred[ok]))
        keys = [category_key(c) for c in classes] if classes else None
        proba = np.concatenate(self.proba).astype(np.float64) if self.proba else None
        if proba is not None and (keys is None or proba.shape[1] != len(keys)):
            proba = None
        return _finite(compute_metrics(task, y_true.astype(str), y_pred.astype(str), proba, keys))


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _finite(d: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def _quality_check(spec: ModelSpec, champion: dict | None) -> tuple[bool, list[str]]:
    mon = spec.monitoring
    metric = mon.quality_metric or spec.promotion.metric
    if mon.quality_minimum is None or not champion:
        return False, []
    if champion["labelled"] < mon.min_rows:
        return False, []
    value = champion["metrics"].get(metric)
    if value is None:
        return False, []
    lower = metric in LOWER_IS_BETTER  # for log_loss/rmse/mae the "minimum" is a ceiling
    bad = value > mon.quality_minimum if lower else value < mon.quality_minimum
    if not bad:
        return False, []
    sign = ">" if lower else "<"
    return True, [f"live {metric} {value:.3f} {sign} {mon.quality_minimum:g} "
                  f"on {champion['labelled']} labelled rows"]


# -- the run ------------------------------------------------------------------------------
def run_monitor(ctx, model: str, *, window_hours: float | None = None,
                announce: Announce | None = None) -> dict[str, Any]:
    """Monitor the champion of `model` over the last window. `announce(key, info)` is called
    after a retrain dataset is written: the local runtime passes one that queues validation;
    on a cloud the object-created notification of datasets/ does the same."""
    version = ctx.registry.champion_version(model)
    if version is None:
        return {"status": "skipped", "model": model, "reason": "no champion"}
    prefix = layout.model_prefix(model, version)
    spec = parse_spec(json.loads(ctx.store.get(prefix + "spec.json")))
    profile = json.loads(ctx.store.get(prefix + "profile.json"))
    record = ctx.registry.get_version(model, version)
    end = ctx.clock.now()
    hours = window_hours or spec.monitoring.window_hours
    start = end - timedelta(hours=hours)
    numeric_target = not spec.task.is_classification

    labels = LabelIndex.load(ctx, model, spec.target, numeric=numeric_target)
    features = FeatureDriftAccumulator(profile, spec)
    preds = PredictionAccumulator(profile["predictions"]) if profile.get("predictions") else None
    quality: dict[str, _Quality] = {}
    counts: dict[str, dict[str, int]] = {}
    stats: dict[str, int] = {}
    names = spec.feature_names
    for chunk in _chunks(iter_captures(ctx, model, start, end, stats)):
        served = []
        for r in chunk:
            v, role = str(r.get("version")), r.get("role") or "served"
            c = counts.setdefault(v, {})
            c[role] = c.get(role, 0) + 1
            if r.get("version") == version and role != "shadow":
                served.append(r)
        if served:
            cols = {n: [r["features"].get(n) for r in served] for n in names}
            features.add_columns(cols, len(served))
            if preds is not None:
                preds.add([r.get("prediction") for r in served])
        if len(labels):
            found, values = labels.lookup([str(r.get("id")) for r in chunk])
            if found.any():
                matched = [r for r, ok in zip(chunk, found, strict=True) if ok]
                groups: dict[str, list[int]] = {}
                for i, r in enumerate(matched):
                    key = f"{r.get('version')}{'/shadow' if r.get('role') == 'shadow' else ''}"
                    groups.setdefault(key, []).append(i)
                for key, idx in groups.items():
                    quality.setdefault(key, _Quality(numeric_target)).add(
                        [matched[i] for i in idx], values[np.asarray(idx)])

    rows = features.rows
    report: dict[str, Any] = {
        "model": model, "version": version, "generated_at": end.isoformat(),
        "window": {"start": start.isoformat(), "end": end.isoformat(), "hours": hours},
        "rows": rows, "rows_by_version": counts,
        "capture_objects": stats.get("objects", 0), "capture_bytes": stats.get("bytes", 0),
        "policy": spec.monitoring.model_dump(mode="json"),
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
    report["alerts"] = alerts
    report["summary"] = _summary(report)

    stamp = end.strftime("%Y%m%dT%H%M%S")
    base = f"{layout.REPORTS}{model}/monitoring/"
    report.update(report_key=f"{base}{stamp}.json", html_key=f"{base}{stamp}.html",
                  latest_key=f"{base}latest.json")
    report["retrain"] = _maybe_retrain(ctx, spec, report, labels, start, end, announce)
    _store_report(ctx, report, base)
    if alerts:
        _alert(ctx, report)
    return report


def _lineage(ctx, model: str, version: int, record: dict) -> dict[str, Any]:
    alias = ctx.registry.get_alias(model) or {}
    keep = ("status", "sha256", "artifact_key", "metrics", "parity", "params", "classes",
            "task", "rows_train", "rows_holdout", "created_at", "completed_at", "lineage")
    return {"version": version, "champion_since": alias.get("updated_at") or alias.get("at"),
            **{k: record.get(k) for k in keep if k in record}}


def _quality_report(ctx, spec, model, record, quality, labels: LabelIndex, counts,
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
                           "metrics": q.metrics(spec.task.value, classes),
                           "sampled": q.labelled > q.kept}
    champion = by_version.get(str(version))
    window_rows = sum(sum(c.values()) for c in counts.values())
    matched = sum(q.labelled for q in quality.values())
    alert, reasons = _quality_check(spec, champion)
    return {
        "metric": mon.quality_metric or spec.promotion.metric, "minimum": mon.quality_minimum,
        "training_metrics": record.get("metrics") or {},
        "labels": {"files": labels.files, "labels": len(labels), "rows_read": labels.read,
                   "matched_rows": matched, "window_rows": window_rows,
                   "coverage": matched / window_rows if window_rows else 0.0,
                   "labels_matched": int(labels.hit.sum()),
                   "labels_unmatched": int(len(labels) - labels.hit.sum())},
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
    if q["reasons"]:
        parts.extend(q["reasons"])
    elif champion and champion["metrics"].get(q["metric"]) is not None:
        parts.append(f"live {q['metric']} {champion['metrics'][q['metric']]:.3f} on "
                     f"{champion['labelled']} labelled rows")
    return f"{head}: " + "; ".join(parts)


def _alert(ctx, report: dict) -> None:
    kinds = sorted({a["kind"] for a in report["alerts"]})
    what = "quality" if kinds == ["quality"] else "drift"
    ctx.notifier.publish(
        f"mlops-kit ALERT: {what} on {report['model']} v{report['version']}",
        {"event": what, "model": report["model"], "version": report["version"],
         "summary": report["summary"], "kinds": kinds, "report_key": report["report_key"],
         "html_key": report["html_key"],
         "drifted_features": report.get("drift", {}).get("drifted_features", []),
         "prediction_drift": bool(report.get("prediction_drift", {}).get("drifted")),
         "quality": report["quality"]["reasons"], "retrain": report["retrain"].get("status")},
    )


def _store_report(ctx, report: dict, base: str) -> None:
    from mlops_kit.core.monitoring.report_html import render_report

    body = json.dumps(report, indent=2, default=str).encode()
    html = render_report(report).encode()
    ctx.store.put(report["report_key"], body, content_type="application/json")
    ctx.store.put(report["html_key"], html, content_type="text/html; charset=utf-8")
    # latest.*: full copies written last, so `mlops-kit report MODEL` reads one object
    ctx.store.put(f"{base}latest.json", body, content_type="application/json")
    ctx.store.put(f"{base}latest.html", html, content_type="text/html; charset=utf-8")


# -- retrain on drift ---------------------------------------------------------------------
def _maybe_retrain(ctx, spec: ModelSpec, report: dict, labels: LabelIndex, start: datetime,
                   end: datetime, announce: Announce | None) -> dict[str, Any]:
    """Write datasets/<model>/retrain-<stamp>.csv (the champion's training CSV + labelled
    captures of the window). Training then follows the ordinary upload path (validation ->
    train), so the new data is validated and profiled like any upload. At most one retrain
    per cooldown: the claim is a conditional write in the table (pk MONITOR#<model>)."""
    mon, model = spec.monitoring, report["model"]
    if not mon.retrain_on_drift:
        return {"status": "disabled"}
    if not report.get("drifted"):
        return {"status": "not_needed"}
    base_key = (report["lineage"].get("lineage") or {}).get("dataset_key")
    if not base_key or not base_key.lower().endswith(".csv"):
        return {"status": "skipped",
                "reason": f"the champion's training data {base_key!r} is not a CSV the monitor "
                          "can extend; upload a new dataset to retrain"}
    now = ctx.clock.now()
    pk = MONITOR_PK.format(model=model)
    item = ctx.table.get(pk, RETRAIN_SK)
    if item:
        until = datetime.fromisoformat(item["last_at"]) + timedelta(hours=mon.retrain_cooldown_hours)
        if now < until:
            return {"status": "cooldown", "last_at": item["last_at"], "until": until.isoformat(),
                    "last_dataset_key": item.get("dataset_key")}
    key = f"{layout.DATASETS}{model}/retrain-{now:%Y%m%dT%H%M%S}.csv"
    claim = {"last_at": now.isoformat(), "version": report["version"], "dataset_key": key,
             "report_key": report["report_key"]}
    try:
        ctx.table.put(pk, RETRAIN_SK, claim, Equals("last_at", item["last_at"]) if item else Absent())
    except ConditionFailed:
        return {"status": "cooldown", "reason": "another monitoring run claimed the retrain"}
    try:
        info, added = _write_retrain_dataset(ctx, spec, base_key, key, labels, start, end)
    except Exception:
        # give the claim back so the next run retries instead of waiting out the cooldown
        if item:
            ctx.table.put(pk, RETRAIN_SK, {k: v for k, v in item.items() if k not in ("pk", "sk")},
                          Equals("last_at", claim["last_at"]))
        else:
            ctx.table.delete(pk, RETRAIN_SK, Equals("last_at", claim["last_at"]))
        raise
    if announce is not None:
        announce(key, info)
    log.info("retrain requested for %s: %s (+%d labelled rows)", model, key, added)
    return {"status": "requested", "trigger": "drift", "dataset_key": key,
            "base_dataset_key": base_key, "labelled_rows_added": added,
            "cooldown_until": (now + timedelta(hours=mon.retrain_cooldown_hours)).isoformat()}


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _write_retrain_dataset(ctx, spec: ModelSpec, base_key: str, key: str, labels: LabelIndex,
                           start: datetime, end: datetime) -> tuple[ObjectInfo, int]:
    added = 0
    fd, path = tempfile.mkstemp(suffix=".csv", prefix="mlops-kit-retrain-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            with ctx.store.open(base_key) as src:
                reader = csv.reader(io.TextIOWrapper(src, encoding="utf-8-sig", newline=""))
                header = next(reader, None) or [*spec.feature_names, spec.target]
                writer.writerow(header)
                for row in reader:
                    writer.writerow(row)
            features = set(spec.feature_names)
            for chunk in _chunks(iter_captures(ctx, spec.name, start, end)):
                chunk = [r for r in chunk if r.get("role") != "shadow"]
                found, values = labels.lookup([str(r.get("id")) for r in chunk])
                for r, y in zip([r for r, ok in zip(chunk, found, strict=True) if ok], values,
                                strict=True):
                    feats = r.get("features") or {}
                    writer.writerow([_cell(y) if c == spec.target else
                                     _cell(feats.get(c)) if c in features else "" for c in header])
                    added += 1
        return ctx.store.put_file(key, path), added
    finally:
        os.unlink(path)


# -- CloudWatch Embedded Metric Format ------------------------------------------------------
def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


def emf_metrics(report: dict) -> dict[str, Any]:
    """One EMF document for a monitoring report (the AWS monitor handler prints it as a line;
    CloudWatch turns it into metrics under the mlops-kit namespace, dimension Model)."""
    drift = report.get("drift") or {}
    feats = drift.get("features") or {}
    quality = report.get("quality") or {}
    champion = quality.get("champion") or {}
    values: dict[str, tuple[float, str]] = {
        "CapturedRows": (report.get("rows", 0), "Count"),
        "DriftedFeatures": (len(drift.get("drifted_features") or []), "Count"),
        "MaxPSI": (max((f.get("psi", 0.0) for f in feats.values()), default=0.0), "None"),
        "MissingRateAlerts": (len(drift.get("missing_rate_alerts") or []), "Count"),
        "OutOfRangeAlerts": (len(drift.get("out_of_range_alerts") or []), "Count"),
        "PredictionPSI": ((report.get("prediction_drift") or {}).get("psi", 0.0), "None"),
        "LabelledRows": (champion.get("labelled", 0), "Count"),
        "LabelCoverage": ((quality.get("labels") or {}).get("coverage", 0.0), "None"),
        "Alerts": (len(report.get("alerts") or []), "Count"),
        "InsufficientData": (int(report.get("status") == "insufficient_data"), "Count"),
    }
    for name, value in (champion.get("metrics") or {}).items():
        values[f"Live{_camel(name)}"] = (value, "None")
    values = {k: (float(v), u) for k, (v, u) in values.items()
              if isinstance(v, (int, float)) and math.isfinite(v)}
    stamp = report.get("generated_at")
    ts = int(datetime.fromisoformat(stamp).timestamp() * 1000) if stamp else 0
    return {
        "_aws": {"Timestamp": ts, "CloudWatchMetrics": [{
            "Namespace": "mlops-kit", "Dimensions": [["Model"]],
            "Metrics": [{"Name": k, "Unit": u} for k, (_, u) in values.items()]}]},
        "Model": report.get("model"), "Version": str(report.get("version")),
        "Status": report.get("status"),
        **{k: v for k, (v, _) in values.items()},
    }
