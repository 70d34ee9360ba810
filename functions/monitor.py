"""monitor: an EventBridge scheduled event -> core.monitoring.run_monitor for every registered
model (drift report in the artifact store, a notification on drift). One model failing does not
stop the others; the invocation then fails so the error shows in the function's metrics."""

from __future__ import annotations

import json
import sys
from typing import Any

from aws_lambda_powertools import Logger

import _wiring
from mlops_kit.adapters.aws.emf import emf_metrics
from mlops_kit.core.capture_parquet import compact_captures
from mlops_kit.core.monitoring.monitor import run_monitor
from mlops_kit.errors import MlopsKitError

logger = Logger(service="mlops-kit-monitor", stream=sys.stderr)  # stdout stays clean for --json


class MonitoringFailed(RuntimeError):
    pass


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ctx = _wiring.backend().ctx
    reports, errors = [], []
    for model in ctx.registry.list_models():
        try:
            # closed hours of captures -> Parquet (Athena / DuckDB); the monitor reads the raw
            compacted = compact_captures(ctx.store, model, ctx.clock.now())
            if compacted:
                logger.info("captures compacted", extra={
                    "model": model, "hours": [c["hour"] for c in compacted],
                    "rows": sum(c["rows"] for c in compacted)})
            r = run_monitor(ctx, model)  # a retrain dataset is announced by S3's notification
        except MlopsKitError as exc:
            logger.error("monitoring failed", extra={"model": model, "error": exc.message})
            errors.append({"model": model, "error": exc.message})
            continue
        reports.append({k: r.get(k) for k in ("model", "version", "status", "rows", "drifted",
                                               "report_key", "reason")})
        logger.info("monitoring done", extra={"report": reports[-1]})
        # CloudWatch Embedded Metric Format: one log line becomes metrics (no PutMetricData call)
        print(json.dumps(emf_metrics(r)), file=sys.stderr, flush=True)
    if errors:
        raise MonitoringFailed(f"monitoring failed for {[e['model'] for e in errors]}: {errors}")
    return {"reports": reports, "errors": errors}
