"""The stack's CloudWatch dashboard: pipeline throughput, serving latency, drift per model.

A pure function of resolved names (no pulumi), so its JSON is unit-testable. Drift comes from
the monitor's Embedded Metric Format lines (`mlops_kit.adapters.aws.emf.emf_metrics`: namespace
`mlops-kit`, dimensions `Stack` and `Model`); models are not known at deploy time, so those
widgets use CloudWatch SEARCH expressions, pinned to this stack, that draw one line per model
that has reported (another stack in the same account and region never shows up).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_kit.topology import Topology

EMF_NAMESPACE = "mlops-kit"  # emf_metrics: CloudWatchMetrics[].Namespace
EMF_DIMENSIONS = ("Stack", "Model")  # emf_metrics(report, stack=<name prefix>)
DRIFT_METRICS = ("MaxPSI", "PredictionPSI")  # feature drift (worst feature), prediction drift
MODEL_METRICS = ("CapturedRows", "Alerts")
WIDTH, HEIGHT = 12, 6


def emf_search(stack: str, metric: str, stat: str, period: int) -> str:
    """One line per model of this stack (the name prefix is [a-z0-9-]: nothing to escape)."""
    schema = ",".join((EMF_NAMESPACE, *EMF_DIMENSIONS))
    return (f"SEARCH('{{{schema}}} Stack=\"{stack}\" MetricName=\"{metric}\"', "
            f"'{stat}', {period})")


def _search(stack: str, metric: str, stat: str, period: int, id_: str) -> dict[str, Any]:
    return {"expression": emf_search(stack, metric, stat, period), "id": id_, "label": metric}


def dashboard_body(topology: Topology, region: str, functions: Mapping[str, str],
                   queues: Mapping[str, str], dlqs: Mapping[str, str], api_id: str | None,
                   stage: str = "$default", stack: str = "") -> dict[str, Any]:
    """functions/queues/dlqs: topology name -> deployed name; stack: the name prefix (the
    Stack dimension the monitor's metrics carry)."""
    widgets: list[dict[str, Any]] = []

    def widget(title: str, metrics: list, stat: str = "Sum", period: int = 300,
               **props: Any) -> None:
        n = len(widgets)
        widgets.append({"type": "metric", "x": (n % 2) * WIDTH, "y": (n // 2) * HEIGHT,
                        "width": WIDTH, "height": HEIGHT,
                        "properties": {"title": title, "region": region, "view": "timeSeries",
                                       "stat": stat, "period": period, "metrics": metrics,
                                       **props}})

    consumers = [q.consumer for q in topology.queues]
    widget("Pipeline throughput (messages and runs per 5 min)",
           [["AWS/SQS", "NumberOfMessagesSent", "QueueName", queues[q.name],
             {"label": f"{q.name} queued"}] for q in topology.queues]
           + [["AWS/Lambda", "Invocations", "FunctionName", functions[f],
               {"label": f"{f} runs"}] for f in consumers])
    widget("Pipeline failures", [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName",
                                  dlqs[q.name], {"label": f"{q.dlq} depth", "stat": "Maximum"}]
                                 for q in topology.queues]
           + [["AWS/Lambda", "Errors", "FunctionName", functions[f.name],
               {"label": f"{f.name} errors"}] for f in topology.functions]
           + [["AWS/Lambda", "Throttles", "FunctionName", functions[f.name],
               {"label": f"{f.name} throttles"}] for f in topology.functions])
    widget("Queue wait (oldest message, s)",
           [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", queues[q.name],
             {"label": q.name}] for q in topology.queues], stat="Maximum")
    serve = functions[topology.http.function]
    latency: list = [["AWS/Lambda", "Duration", "FunctionName", serve,
                      {"label": "serve p50", "stat": "p50"}],
                     ["AWS/Lambda", "Duration", "FunctionName", serve,
                      {"label": "serve p99", "stat": "p99"}]]
    if api_id:
        latency += [["AWS/ApiGateway", "Latency", "ApiId", api_id, "Stage", stage,
                     {"label": "API p50", "stat": "p50"}],
                    ["AWS/ApiGateway", "Latency", "ApiId", api_id, "Stage", stage,
                     {"label": "API p99", "stat": "p99"}]]
    widget("Serving latency (ms)", latency, stat="p99", period=60)
    if api_id:
        widget("Serving requests and errors",
               [["AWS/ApiGateway", metric, "ApiId", api_id, "Stage", stage, {"label": metric}]
                for metric in ("Count", "4xx", "5xx")], period=60)
    widget("Drift score per model (PSI)",
           [[_search(stack, m, "Maximum", 3600, f"drift{i}")] for i, m in enumerate(DRIFT_METRICS)],
           stat="Maximum", period=3600)
    widget("Monitored rows and alerts per model",
           [[_search(stack, m, "Sum", 3600, f"model{i}")] for i, m in enumerate(MODEL_METRICS)],
           period=3600)
    return {"widgets": widgets}
