"""Every topology element is rendered, with the topology's numbers, and nothing is re-declared."""

from __future__ import annotations

import json

import pytest

from infra.components.api import route_keys
from mlops_kit.topology import ENV_FOR, QUEUE_ENV, STORE_ENV, default_topology
from tests.infra.harness import ACCOUNT, REGION, base_config, run_program

TOPO = default_topology()
P = "mlk-test"


def test_every_store_rendered_with_lifecycle_expiry(graph):
    for store in TOPO.stores:
        bucket = graph.one("aws:s3/bucket:Bucket", f"{P}-{store.name}")
        name = bucket.state["bucket"]
        (lc,) = [r for r in graph.of("aws:s3/bucketLifecycleConfiguration:"
                                     "BucketLifecycleConfiguration")
                 if r.inputs["bucket"] == name]
        expiring = {r["filter"]["prefix"]: r["expiration"]["days"]
                    for r in lc.inputs["rules"] if "days" in r.get("expiration", {})}
        assert expiring == store.expire_days
        assert all(r["status"] == "Enabled" for r in lc.inputs["rules"])
        noncurrent = [r for r in lc.inputs["rules"] if r["id"] == "expire-noncurrent-versions"]
        if store.noncurrent_days:
            (rule,) = noncurrent
            assert rule["filter"] == {"prefix": ""}  # the whole bucket
            assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": store.noncurrent_days}
            assert rule["expiration"] == {"expiredObjectDeleteMarker": True}
        else:
            assert noncurrent == []  # data: lineage records dataset version ids
    assert graph.outputs["data_bucket"] == graph.one(
        "aws:s3/bucket:Bucket", f"{P}-data").state["bucket"]
    assert graph.outputs["artifact_bucket"] == graph.one(
        "aws:s3/bucket:Bucket", f"{P}-artifacts").state["bucket"]


def test_object_created_triggers_rendered(graph):
    for store in {t.store for t in TOPO.object_triggers}:
        bucket = graph.one("aws:s3/bucket:Bucket", f"{P}-{store}").state["bucket"]
        (notif,) = [r for r in graph.of("aws:s3/bucketNotification:BucketNotification")
                    if r.inputs["bucket"] == bucket]
        rendered = {(q["filterPrefix"], q["queueArn"], tuple(q["events"]))
                    for q in notif.inputs["queues"]}
        expected = {(t.prefix, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{P}-{t.queue}",
                     ("s3:ObjectCreated:*",))
                    for t in TOPO.object_triggers if t.store == store}
        assert rendered == expected
    for queue in {t.queue for t in TOPO.object_triggers}:
        (pol,) = [r for r in graph.of("aws:sqs/queuePolicy:QueuePolicy")
                  if r.inputs["queueUrl"].endswith(f"/{P}-{queue}")]
        (stmt,) = json.loads(pol.inputs["policy"])["Statement"]
        assert stmt["Principal"] == {"Service": "s3.amazonaws.com"}
        assert stmt["Action"] == "sqs:SendMessage"
        assert stmt["Resource"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{P}-{queue}"
        sources = {t.store for t in TOPO.object_triggers if t.queue == queue}
        assert stmt["Condition"]["ArnEquals"]["aws:SourceArn"] == sorted(
            graph.one("aws:s3/bucket:Bucket", f"{P}-{s}").state["arn"] for s in sources)
        # bucket names are global: only this account's bucket of that name may send
        assert stmt["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}


def test_event_source_mappings_report_batch_item_failures(graph):
    mappings = graph.of("aws:lambda/eventSourceMapping:EventSourceMapping")
    assert len(mappings) == len(TOPO.queues)
    for q in TOPO.queues:
        m = graph.one("aws:lambda/eventSourceMapping:EventSourceMapping",
                      f"{P}-{q.name}-to-{q.consumer}")
        assert m.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
        assert m.inputs["eventSourceArn"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{P}-{q.name}"
        assert m.inputs["functionName"].endswith(f":function:{P}-{q.consumer}")
        assert m.inputs["batchSize"] == q.batch_size
        if q.max_concurrency:
            assert m.inputs["scalingConfig"] == {"maximumConcurrency": q.max_concurrency}
        else:
            assert "scalingConfig" not in m.inputs
    train = graph.one("aws:lambda/eventSourceMapping:EventSourceMapping", f"{P}-train-to-train")
    assert train.inputs["scalingConfig"] == {"maximumConcurrency": 2}  # caps train


def test_every_function_rendered(graph):
    assert len(graph.of("aws:lambda/function:Function")) == len(TOPO.functions)
    for fn in TOPO.functions:
        f = graph.one("aws:lambda/function:Function", f"{P}-{fn.name}")
        i = f.inputs
        assert i["memorySize"] == (2048 if fn.name == "serve" else fn.memory_mb)  # config override
        assert i["timeout"] == fn.timeout_s
        role = graph.one("aws:iam/role:Role", f"{P}-{fn.name}-role")
        assert i["role"] == role.state["arn"]
        assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {
            "Service": "lambda.amazonaws.com"}
        if fn.package == "zip":
            assert i["packageType"] == "Zip" and i["runtime"] == "python3.12"
            assert i["handler"] == fn.handler
            obj = graph.one("aws:s3/bucketObjectv2:BucketObjectv2", f"{P}-{fn.name}-code")
            assert i["s3Key"] == obj.inputs["key"] and obj.inputs["key"].startswith(fn.name + "/")
            assert i["sourceCodeHash"]
        else:
            assert i["packageType"] == "Image"
            assert i["imageUri"].startswith(f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/")


def test_function_environment_from_topology(graph):
    for fn in TOPO.functions:
        env = graph.one("aws:lambda/function:Function", f"{P}-{fn.name}").inputs[
            "environment"]["variables"]
        assert env[ENV_FOR["backend"]] == "aws"
        assert env["MLOPSKIT_REGION"] == REGION
        assert env[ENV_FOR["stack"]] == P  # the Stack dimension of the monitor's metrics
        for store in TOPO.stores:
            assert env[STORE_ENV[store.name]] == graph.one(
                "aws:s3/bucket:Bucket", f"{P}-{store.name}").state["bucket"]
        # the aws backend builds every adapter at cold start: every name is set (names only;
        # test_least_privilege checks what each function may do with them)
        assert env[ENV_FOR["table"]] == graph.outputs["table_name"]
        for q in TOPO.queues:
            assert env[QUEUE_ENV[q.name]] == graph.outputs["queue_urls"][q.name]
        assert (ENV_FOR["topic"] in env) == fn.publishes
        if fn.publishes:
            assert env[ENV_FOR["topic"]] == graph.outputs["topic_arn"]


def test_function_environment_satisfies_the_aws_backend(graph, monkeypatch):
    """The handlers' own factory accepts the environment the program sets."""
    from mlops_kit.adapters.aws.factory import REQUIRED
    from mlops_kit.settings import Settings
    for fn in TOPO.functions:
        env = graph.one("aws:lambda/function:Function", f"{P}-{fn.name}").inputs[
            "environment"]["variables"]
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        settings = Settings()
        assert settings.backend == "aws"
        missing = [f for f in REQUIRED if f != "topic_arn" and not getattr(settings, f)]
        assert missing == [], (fn.name, missing)


def test_schedule_rendered(graph):
    for sched in TOPO.schedules:
        rule = graph.one("aws:cloudwatch/eventRule:EventRule", f"{P}-{sched.function}-schedule")
        assert rule.inputs["scheduleExpression"] == sched.expression
        target = graph.one("aws:cloudwatch/eventTarget:EventTarget",
                           f"{P}-{sched.function}-schedule-target")
        assert target.inputs["arn"].endswith(f":function:{P}-{sched.function}")
        perm = graph.one("aws:lambda/permission:Permission",
                         f"{P}-{sched.function}-schedule-invoke")
        assert perm.inputs["principal"] == "events.amazonaws.com"
        assert perm.inputs["sourceArn"] == rule.state["arn"]


def test_schedule_from_config(package_dir):
    g = run_program(base_config(package_dir, schedule="cron(0 6 * * ? *)"))
    (rule,) = g.of("aws:cloudwatch/eventRule:EventRule")
    assert rule.inputs["scheduleExpression"] == "cron(0 6 * * ? *)"


def test_http_routes_rendered(graph):
    rendered = {r.inputs["routeKey"] for r in graph.of("aws:apigatewayv2/route:Route")}
    assert rendered == set(route_keys(TOPO.http))
    assert "POST /v1/models/{model}" in rendered  # {model}:predict, whole-segment variable
    assert "GET /v2/health/ready" in rendered
    (integ,) = graph.of("aws:apigatewayv2/integration:Integration")
    assert integ.inputs["integrationUri"].endswith(f":function:{P}-{TOPO.http.function}")
    assert integ.inputs["payloadFormatVersion"] == "2.0"
    (stage,) = graph.of("aws:apigatewayv2/stage:Stage")
    assert stage.inputs["defaultRouteSettings"]["throttlingRateLimit"] == 50
    assert stage.inputs["defaultRouteSettings"]["throttlingBurstLimit"] == 100
    access = graph.one("aws:cloudwatch/logGroup:LogGroup", f"{P}-api-access-logs")
    assert stage.inputs["accessLogSettings"]["destinationArn"] == access.state["arn"]
    assert "$context.requestId" in stage.inputs["accessLogSettings"]["format"]
    perm = graph.one("aws:lambda/permission:Permission", f"{P}-api-invoke-serve")
    assert perm.inputs["principal"] == "apigateway.amazonaws.com"
    assert perm.inputs["sourceArn"] == f"arn:aws:execute-api:{REGION}:{ACCOUNT}:api123/*/*"


def test_alarms_on_dlqs_errors_and_latency(graph):
    alarms = {r.name: r.inputs for r in graph.of("aws:cloudwatch/metricAlarm:MetricAlarm")}
    topic = graph.outputs["topic_arn"]
    for q in TOPO.queues:
        a = alarms[f"{P}-{q.dlq}-depth"]
        assert a["metricName"] == "ApproximateNumberOfMessagesVisible"
        assert a["dimensions"] == {"QueueName": f"{P}-{q.dlq}"}
        assert a["threshold"] == 0 and a["comparisonOperator"] == "GreaterThanThreshold"
    for fn in TOPO.functions:
        a = alarms[f"{P}-{fn.name}-errors"]
        assert a["metricName"] == "Errors" and a["dimensions"] == {"FunctionName": f"{P}-{fn.name}"}
    p99 = alarms[f"{P}-serve-duration-p99"]
    assert p99["extendedStatistic"] == "p99" and p99["threshold"] == 1000
    api = alarms[f"{P}-api-latency-p99"]
    assert api["namespace"] == "AWS/ApiGateway" and api["dimensions"]["ApiId"] == "api123"
    for a in alarms.values():
        assert a["alarmActions"] == [topic]
    (sub,) = graph.of("aws:sns/topicSubscription:TopicSubscription")
    assert sub.inputs == {**sub.inputs, "protocol": "email", "endpoint": "oncall@example.com",
                          "topic": topic}


def test_ecr_repository_scans_and_tags_are_mutable(graph):
    """Mutable: `up` from another checkout (or after a base image update) pushes the same
    content-hash tag again, which an immutable repository refuses; Lambda pins the digest."""
    (repo,) = graph.of("aws:ecr/repository:Repository")
    assert repo.inputs["imageTagMutability"] == "MUTABLE"
    assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}


def test_train_image_built_when_no_uri_given(package_dir):
    pytest.importorskip("pulumi_docker_build", reason="pulumi-docker-build not installed")
    g = run_program(base_config(package_dir, trainImageUri=None))
    (image,) = g.of("docker-build:index:Image")
    assert image.inputs["push"] is True
    assert image.inputs["platforms"] == ["linux/amd64"]
    assert image.inputs["dockerfile"]["location"].endswith("functions/Dockerfile")
    assert image.inputs["buildOnPreview"] is False  # preview needs no Docker daemon
    # relative to the working directory: every checkout gives the provider the same inputs
    assert image.inputs["context"] == {"location": "build/train-image"}
    assert image.inputs["dockerfile"] == {"location": "build/train-image/functions/Dockerfile"}
    (repo,) = g.of("aws:ecr/repository:Repository")
    (tag,) = image.inputs["tags"]
    assert tag.startswith(repo.state["repositoryUrl"] + ":")
    assert image.state["ref"] == f"{tag}@{image.state['digest']}"  # what the provider answers
    train = g.one("aws:lambda/function:Function", f"{P}-train")
    # Lambda refuses repo:tag@sha256 (the ref); it gets repo@sha256, the pushed digest
    assert train.inputs["imageUri"] == f"{repo.state['repositoryUrl']}@{image.state['digest']}"


def test_components_parent_every_child(graph):
    """parent=self everywhere: every AWS resource sits under one of our components."""
    assert len(graph.parents) == len(graph.resources)
    for r in graph.resources:
        parent = graph.parents[(r.typ, r.name)]
        if r.typ.startswith("mlopskit:"):
            continue  # components: top level, or SecureBucket under Storage / Functions
        assert parent is not None and parent.startswith("mlopskit:"), (r.typ, r.name, parent)
    components = {r.typ for r in graph.resources if r.typ.startswith("mlopskit:")}
    assert components == {
        "mlopskit:storage:Storage", "mlopskit:storage:SecureBucket", "mlopskit:queues:Queues",
        "mlopskit:table:RegistryTable", "mlopskit:functions:Functions",
        "mlopskit:functions:TrainImage", "mlopskit:api:InferenceApi",
        "mlopskit:monitoring:Monitoring", "mlopskit:monitoring:AlertsTopic"}


def test_outputs_checked_inside_apply(package_dir):
    """DESIGN pattern: the check runs inside Output.all(...).apply under @pulumi.runtime.test."""
    seen = []

    def check(out):
        assert out["upload_command"].startswith("aws s3 cp <file> s3://mlk-test-data-")
        seen.append(out["inference_url"])

    run_program(base_config(package_dir), check=check)
    assert seen == [f"https://api123.execute-api.{REGION}.amazonaws.com"]


def test_failing_apply_check_fails_the_run(package_dir):
    """The harness cannot pass silently: an assertion inside the apply surfaces."""
    def check(out):
        assert out["table_name"] == "not-the-table"

    with pytest.raises(AssertionError, match="not-the-table"):
        run_program(base_config(package_dir), check=check)


def test_stack_outputs(graph):
    out = graph.outputs
    data = out["data_bucket"]
    assert out["upload_command"] == f"aws s3 cp <file> s3://{data}/datasets/<model>/<file>"
    assert out["inference_url"] == f"https://api123.execute-api.{REGION}.amazonaws.com"
    assert out["table_name"] == graph.one("aws:dynamodb/table:Table", f"{P}-registry").state["name"]
    assert set(out["queue_urls"]) == {q.name for q in TOPO.queues}
    assert out["topic_arn"] == graph.one("aws:sns/topic:Topic", f"{P}-alerts").state["arn"]


def test_main_renders_the_same_graph(package_dir, graph):
    g = run_program(base_config(package_dir), run_main=True)
    assert sorted((r.typ, r.name) for r in g.resources) == sorted(
        (r.typ, r.name) for r in graph.resources)
