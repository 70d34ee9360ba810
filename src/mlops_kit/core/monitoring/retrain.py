"""Retrain on drift: write datasets/<model>/retrain-<stamp>.csv (reference rows + labelled
live rows), which goes through validate -> train like any upload; a cooldown is held by a
conditional write."""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from mlops_kit.core import layout
from mlops_kit.core.capture.chunks import values_of
from mlops_kit.core.capture.reader import iter_capture_chunks
from mlops_kit.core.context import Context
from mlops_kit.core.features import format_days
from mlops_kit.core.monitoring.labels import LabelIndex
from mlops_kit.core.spec import ModelSpec
from mlops_kit.core.table_keys import RETRAIN_SK, monitor_pk
from mlops_kit.errors import ConditionFailed
from mlops_kit.ports import Absent, Equals, ObjectInfo

log = logging.getLogger("mlops_kit.monitoring")





Announce = Callable[[str, ObjectInfo], None]


# -- retrain on drift ---------------------------------------------------------------------
def maybe_retrain(ctx: Context, spec: ModelSpec, report: dict, labels: LabelIndex, start: datetime,
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
    pk = monitor_pk(model)
    item = ctx.table.get(pk, RETRAIN_SK)
    if item:
        until = datetime.fromisoformat(item["last_at"]) + timedelta(hours=mon.retrain_cooldown_hours)
        if now < until:
            return {"status": "cooldown", "last_at": item["last_at"], "until": until.isoformat(),
                    "last_dataset_key": item.get("dataset_key")}
    key = layout.retrain_dataset_key(model, now)
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


def _write_retrain_dataset(ctx: Context, spec: ModelSpec, base_key: str, key: str, labels: LabelIndex,
                           start: datetime, end: datetime) -> tuple[ObjectInfo, int]:
    added = 0
    dates = {f.name: f.format for f in spec.datetimes}
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
            for chunk in iter_capture_chunks(ctx, spec.name, start, end):
                chunk = chunk.select(~chunk.shadow)
                found, values = labels.lookup_keys(chunk.keys())
                if not found.any():
                    continue
                matched = chunk.select(found)
                cols = {c: values_of(matched.features[c]) for c in header
                        if c in matched.features and c in spec.feature_names}
                for name, fmt in dates.items():  # captured as days: written as dates again
                    if name in cols:
                        cols[name] = [None if v is None or v != v else format_days(v, fmt)
                                      for v in cols[name]]
                ys = values.tolist()
                for i in range(matched.n):
                    writer.writerow([_cell(ys[i]) if c == spec.target else
                                     _cell(cols[c][i]) if c in cols else "" for c in header])
                added += matched.n
        return ctx.store.put_file(key, path), added
    finally:
        os.unlink(path)
