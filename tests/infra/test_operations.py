"""What a platform team expects of the stack: tags on everything, the alarms, one dashboard,
and cost-sane defaults."""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime

from infra.components.dashboard import (
    DRIFT_METRICS,
    EMF_DIMENSIONS,
    EMF_NAMESPACE,
    MODEL_METRICS,
    emf_search,
)
from infra.components.tags import COMPONENT_TAG
from mlops_kit.adapters.aws.emf import emf_metrics
from mlops_kit.topology import default_topology
from tests.infra.harness import base_config, run_program

TOPO = default_topology()
P = "mlk-test"
COMPONENTS = {"storage", "queues", "table", "alerts", "functions", "train-image", "api",
              "monitoring"}


def taggable(cls: type) -> bool:
    return "tags" in inspect.signature(cls._internal_init).parameters


def test_every_taggable_aws_resource_has_its_component_tag(graph):
    tagged = {}
    for r in graph.resources:
        cls = graph.classes[(r.typ, r.name)]
        if not r.typ.startswith("aws:") or not taggable(cls):
            continue
        tags = r.inputs.get("tags") or {}
        assert tags.get(COMPONENT_TAG) in COMPONENTS, (r.typ, r.name, tags)
        tagged[(r.typ, r.name)] = tags[COMPONENT_TAG]
    assert set(tagged.values()) == COMPONENTS  # every component tags what it makes
    assert tagged[("aws:s3/bucket:Bucket", f"{P}-data")] == "storage"
    assert tagged[("aws:s3/bucket:Bucket", f"{P}-code")] == "functions"
    assert tagged[("aws:lambda/function:Function", f"{P}-serve")] == "functions"
    assert tagged[("aws:cloudwatch/metricAlarm:MetricAlarm", f"{P}-serve-errors")] == "monitoring"


def alarms(graph) -> dict[str, dict]:
    return {r.name.removeprefix(f"{P}-"): r.inputs
            for r in graph.of("aws:cloudwatch/metricAlarm:MetricAlarm")}


def test_alarms_on_throttles_queue_age_and_api_5xx(graph):
    a = alarms(graph)
    for fn in TOPO.functions:
        t = a[f"{fn.name}-throttles"]
        assert (t["namespace"], t["metricName"], t["threshold"]) == ("AWS/Lambda", "Throttles", 0)
        assert t["dimensions"] == {"FunctionName": f"{P}-{fn.name}"}
    for q in TOPO.queues:
        age = a[f"{q.name}-oldest-message-age"]
        assert age["metricName"] == "ApproximateAgeOfOldestMessage"
        assert age["dimensions"] == {"QueueName": f"{P}-{q.name}"}
        assert age["threshold"] == TOPO.visibility_timeout(q.name)
    five = a["api-5xx"]
    assert (five["namespace"], five["metricName"]) == ("AWS/ApiGateway", "5xx")
    assert five["dimensions"] == {"ApiId": "api123", "Stage": "$default"}
    topic = graph.outputs["topic_arn"]
    assert all(x["alarmActions"] == [topic] and x["okActions"] == [topic] for x in a.values())


def test_alarm_when_the_schedule_could_not_invoke_the_monitor(graph):
    """The schedule rule's FailedInvocations (missing data is not breaching: a fresh stack has
    none; tests/infra/test_aws_deploy_rules.py checks every alarm for that)."""
    hb = alarms(graph)["monitor-did-not-run"]
    assert (hb["namespace"], hb["metricName"], hb["statistic"]) == (
        "AWS/Events", "FailedInvocations", "Sum")
    (rule,) = [r for r in graph.of("aws:cloudwatch/eventRule:EventRule")
               if r.name == f"{P}-monitor-schedule"]
    assert hb["dimensions"] == {"RuleName": rule.state["name"]}
    assert hb["comparisonOperator"] == "GreaterThanThreshold" and hb["threshold"] == 0
    assert hb["treatMissingData"] == "notBreaching"


def test_one_dashboard_with_throughput_latency_and_drift(graph):
    (dash,) = graph.of("aws:cloudwatch/dashboard:Dashboard")
    body = json.loads(dash.inputs["dashboardBody"])
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert any("throughput" in t.lower() for t in titles)
    assert any("latency" in t.lower() for t in titles)
    assert any("drift" in t.lower() for t in titles)
    text = json.dumps(body)
    for fn in TOPO.functions:
        assert f'"{P}-{fn.name}"' in text
    for q in TOPO.queues:
        assert f'"{P}-{q.name}"' in text and f'"{P}-{q.dlq}"' in text
    assert '"api123"' in text
    for w in body["widgets"]:
        assert w["properties"]["region"] == "eu-west-1" and w["properties"]["metrics"]
        assert w["x"] + w["width"] <= 24
    assert graph.outputs["dashboard"] == dash.inputs["dashboardName"]


def test_drift_widget_reads_what_the_monitor_emits(graph):
    """The dashboard's SEARCH expressions name the namespace, dimensions and metrics of the
    monitor's EMF lines (adapters.aws.emf.emf_metrics), per model of this stack: the Stack
    value is the MLOPSKIT_STACK the program gives the monitor."""
    report = {"model": "churn", "version": 1, "status": "ok", "rows": 10,
              "generated_at": datetime(2024, 1, 1, tzinfo=UTC).isoformat(),
              "drift": {"features": {"a": {"psi": 0.3}}, "drifted_features": ["a"]},
              "prediction_drift": {"psi": 0.1}, "alerts": [], "quality": {}}
    monitor = graph.one("aws:lambda/function:Function", f"{P}-monitor")
    stack = monitor.inputs["environment"]["variables"]["MLOPSKIT_STACK"]
    emf = emf_metrics(report, stack=stack)
    (decl,) = emf["_aws"]["CloudWatchMetrics"]
    assert decl["Namespace"] == EMF_NAMESPACE and decl["Dimensions"] == [list(EMF_DIMENSIONS)]
    assert all(emf[d] for d in EMF_DIMENSIONS) and emf["Stack"] == P  # every dimension valued
    emitted = {m["Name"] for m in decl["Metrics"]}
    assert set(DRIFT_METRICS) | set(MODEL_METRICS) <= emitted
    (dash,) = graph.of("aws:cloudwatch/dashboard:Dashboard")
    (drift,) = [w for w in json.loads(dash.inputs["dashboardBody"])["widgets"]
                if "drift" in w["properties"]["title"].lower()]
    exprs = [m[0]["expression"] for m in drift["properties"]["metrics"]]
    for name in DRIFT_METRICS:
        assert (f"SEARCH('{{mlops-kit,Stack,Model}} Stack=\"{P}\" MetricName=\"{name}\"', "
                "'Maximum', 3600)") in exprs
    assert emf_search(stack, "MaxPSI", "Maximum", 3600) in exprs
    searches = [m[0]["expression"] for w in json.loads(dash.inputs["dashboardBody"])["widgets"]
                for m in w["properties"]["metrics"] if isinstance(m[0], dict)]
    assert len(searches) == len(DRIFT_METRICS) + len(MODEL_METRICS)
    assert all(f'Stack="{P}"' in e for e in searches)  # never another stack's models


def test_cost_sane_defaults(graph, package_dir):
    (stage,) = graph.of("aws:apigatewayv2/stage:Stage")
    assert stage.inputs["defaultRouteSettings"]["detailedMetricsEnabled"] is False
    code = graph.one("aws:s3/bucket:Bucket", f"{P}-code").state["bucket"]
    (lc,) = [r for r in graph.of("aws:s3/bucketLifecycleConfiguration:"
                                 "BucketLifecycleConfiguration") if r.inputs["bucket"] == code]
    (rule,) = [r for r in lc.inputs["rules"] if r["id"] == "expire-noncurrent-versions"]
    assert rule["noncurrentVersionExpiration"]["noncurrentDays"] <= 30  # replaced code zips
    on = run_program(base_config(package_dir, detailedApiMetrics="true"))
    (stage,) = on.of("aws:apigatewayv2/stage:Stage")
    assert stage.inputs["defaultRouteSettings"]["detailedMetricsEnabled"] is True
