"""monitor: an EventBridge scheduled event -> core.monitoring.monitor_all: run_monitor for every
registered model (drift report in the artifact store, a notification on drift). One model
failing never stops the others: it is listed in the run's JSON (`errors`) and in one alert on the
topic. The invocation itself succeeds, so EventBridge's asynchronous retries do not monitor every
model again. First, the closed hours of captures are compacted to Parquet (core.capture.parquet;
a failure is logged and retried by the next run)."""

from __future__ import annotations

import json
import sys
from typing import Any

from aws_lambda_powertools import Logger

import _wiring
from mlops_kit.adapters.aws.emf import emf_metrics
from mlops_kit.core.capture.parquet import compact_all
from mlops_kit.core.monitoring.usecase import monitor_all

logger = Logger(service="mlops-kit-monitor", stream=sys.stderr)  # stdout stays clean for --json


def _emit(report: dict[str, Any]) -> None:
    logger.info("monitoring done", extra={"report": {k: report.get(k) for k in (
        "model", "version", "status", "rows", "drifted", "report_key", "reason")}})
    # CloudWatch Embedded Metric Format: one log line becomes metrics (no PutMetricData call)
    print(json.dumps(emf_metrics(report, stack=_wiring.backend().settings.stack)),
          file=sys.stderr, flush=True)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ctx = _wiring.backend().ctx
    # closed hours of captures -> Parquet for Athena / DuckDB (docs/captures.md); the monitor
    # itself reads the raw columnar objects
    compacted = compact_all(ctx.store, ctx.registry.list_models(), ctx.clock.now())
    if compacted["hours"]:
        logger.info("captures compacted", extra={"hours": compacted["hours"]})
    for e in compacted["errors"]:
        logger.error("capture compaction failed", extra=e)
    # a retrain dataset is announced by S3's notification (no announce callback here)
    out = monitor_all(ctx, on_report=_emit)
    for e in out["errors"]:
        logger.error("monitoring failed", extra=e)
    return out
