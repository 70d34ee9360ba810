"""monitor: an EventBridge scheduled event -> core.monitoring.monitor_all: run_monitor for every
registered model (drift report in the artifact store, a notification on drift). One model
failing never stops the others: it is listed in the run's JSON (`errors`) and in one alert on the
topic. The invocation itself succeeds, so EventBridge's asynchronous retries do not monitor every
model again."""

from __future__ import annotations

import json
import sys
from typing import Any

from aws_lambda_powertools import Logger

import _wiring
from mlops_kit.adapters.aws.emf import emf_metrics
from mlops_kit.core.monitoring.monitor import monitor_all

logger = Logger(service="mlops-kit-monitor", stream=sys.stderr)  # stdout stays clean for --json


def _emit(report: dict[str, Any]) -> None:
    logger.info("monitoring done", extra={"report": {k: report.get(k) for k in (
        "model", "version", "status", "rows", "drifted", "report_key", "reason")}})
    # CloudWatch Embedded Metric Format: one log line becomes metrics (no PutMetricData call)
    print(json.dumps(emf_metrics(report, stack=_wiring.backend().settings.stack)),
          file=sys.stderr, flush=True)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # a retrain dataset is announced by S3's notification (no announce callback here)
    out = monitor_all(_wiring.backend().ctx, on_report=_emit)
    for e in out["errors"]:
        logger.error("monitoring failed", extra=e)
    return out
