"""The stack's CloudWatch dashboard: pipeline throughput, serving latency, drift per model.

A pure function of resolved names (no pulumi), so its JSON is unit-testable. Drift comes from
the monitor's Embedded Metric Format lines (`mlops_kit.adapters.aws.emf.emf_metrics`: namespace
`mlops-kit`, dimension `Model`); models are not known at deploy time, so those widgets use
CloudWatch SEARCH expressions that draw one line per model that has reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_kit.topology import Topology

EMF_NAMESPACE = "mlops-kit"  # emf_metrics: CloudWatchMetrics[].Namespace
EMF_DIMENSION = "Model"
DRIFT_METRICS = ("MaxPSI", "PredictionPSI")  # feature drift (worst feature), prediction drift
MODEL_METRICS = ("CapturedRows", "Alerts")
WIDTH, HEIGHT = 12, 6


def _search(metric: str, stat: str, period: int, id_: str) -> dict[str, Any]:
    expr = f"SEARCH('{{{EMF_NAMESPACE},{EMF_DIMENSION}}} MetricName=\"{metric}\"', '{stat}', {period})"
    return {"expression": expr, "id": id_, "label": metric}


def dashboard_body(topology: Topology, region: str, functions: Mapping[str, str],
                   queues: Mapping[str, str], dlqs: Mapping[str, str], api_id: str | None,
                   stage: str = "$default") -> dict[str, Any]:
    """functions/queues/dlqs: topology name -> deployed name."""
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
           [[_search(m, "Maximum", 3600, f"drift{i}")] for i, m in enumerate(DRIFT_METRICS)],
           stat="Maximum", period=3600)
    widget("Monitored rows and alerts per model",
           [[_search(m, "Sum", 3600, f"model{i}")] for i, m in enumerate(MODEL_METRICS)],
           period=3600)
    return {"widgets": widgets}
