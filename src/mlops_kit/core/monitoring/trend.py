"""The compact summary of one monitoring run that the registry keeps (MON#<time>): enough to
draw drift and live quality over time and to show the last status, without reading reports."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["trend_entry"]


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def trend_entry(report: dict[str, Any]) -> dict[str, Any]:
    drift = report.get("drift") or {}
    quality = report.get("quality") or {}
    champion = quality.get("champion") or {}
    metric = quality.get("metric")
    pred = report.get("prediction_drift") or {}
    return {
        "at": report["generated_at"], "version": report["version"], "status": report["status"],
        "drifted": bool(report.get("drifted")), "rows": report.get("rows", 0),
        "summary": str(report.get("summary", ""))[:500],
        "report_key": report.get("report_key"), "html_key": report.get("html_key"),
        "threshold": _num((report.get("policy") or {}).get("threshold")),
        "features": {
            name: {"psi": _num(f.get("psi")), "method": f.get("method"),
                   "statistic": _num(f.get("statistic")), "drifted": bool(f.get("drifted"))}
            for name, f in (drift.get("features") or {}).items()
        },
        "prediction_psi": _num(pred.get("psi", pred.get("statistic"))),
        "prediction_drifted": bool(pred.get("drifted")),
        "quality": {"metric": metric, "minimum": _num(quality.get("minimum")),
                    "value": _num((champion.get("metrics") or {}).get(metric)),
                    "labelled": champion.get("labelled", 0), "alert": bool(quality.get("alert"))},
        "alerts": sorted({a.get("kind", "") for a in report.get("alerts") or []}),
    }
