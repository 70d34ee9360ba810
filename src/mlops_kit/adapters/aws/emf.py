"""CloudWatch Embedded Metric Format for a monitoring report: the AWS monitor handler prints it
as one log line and CloudWatch turns it into metrics (namespace mlops-kit, dimensions Stack and
Model: two stacks in one account and region never share a series)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any


# -- CloudWatch Embedded Metric Format ------------------------------------------------------
def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


NAMESPACE = "mlops-kit"


def emf_metrics(report: dict, stack: str | None = None) -> dict[str, Any]:
    """One EMF document for a monitoring report (the AWS monitor handler prints it as a line;
    CloudWatch turns it into metrics under the mlops-kit namespace, dimensions Stack (the
    deployment's name prefix, MLOPSKIT_STACK) and Model; Model alone without a stack)."""
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
            "Namespace": NAMESPACE, "Dimensions": [["Stack", "Model"] if stack else ["Model"]],
            "Metrics": [{"Name": k, "Unit": u} for k, (_, u) in values.items()]}]},
        **({"Stack": stack} if stack else {}),
        "Model": report.get("model"), "Version": str(report.get("version")),
        "Status": report.get("status"),
        **{k: v for k, (v, _) in values.items()},
    }
