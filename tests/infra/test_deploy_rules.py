"""What AWS refuses at deploy time (or later, at run time) is refused here first, one test per rule.

The stack is rendered with the longest name prefix config accepts, so name-length rules are
checked at their worst case. Physical names are the explicit `name` input where the program sets
one, otherwise Pulumi's auto-name: the logical name plus "-" and 7 random characters.
"""

from __future__ import annotations

import re

import pytest

from infra.components.monitoring import MAX_ALARM_WINDOW_S, MAX_SHORT_WINDOW_S
from mlops_kit.topology import default_topology
from tests.infra.harness import ACCOUNT, REGION, Graph, base_config, max_prefix, run_program

TOPO = default_topology()
AUTONAME_SUFFIX = 8  # "-" + 7 random characters
DIGEST_ONLY = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[a-z0-9][\w./-]*"
                         r"@sha256:[0-9a-f]{64}$")

# resource type -> (the input holding its name, AWS's maximum length)
NAME_LIMITS = {
    "aws:lambda/function:Function": ("name", 64),
    "aws:iam/role:Role": ("name", 64),
    "aws:iam/rolePolicy:RolePolicy": ("name", 128),
    "aws:sqs/queue:Queue": ("name", 80),
    "aws:s3/bucket:Bucket": ("bucket", 63),
    "aws:dynamodb/table:Table": ("name", 255),
    "aws:cloudwatch/eventRule:EventRule": ("name", 64),
    "aws:cloudwatch/logGroup:LogGroup": ("name", 512),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("name", 255),
    "aws:cloudwatch/dashboard:Dashboard": ("dashboardName", 255),
    "aws:lambda/permission:Permission": ("statementId", 100),
    "aws:ecr/repository:Repository": ("name", 256),
    "aws:sns/topic:Topic": ("name", 256),
    "aws:apigatewayv2/api:Api": ("name", 128),
}


@pytest.fixture(scope="module")
def longest(package_dir) -> Graph:
    return run_program(base_config(package_dir, namePrefix=max_prefix()))


def physical_name(r, key: str) -> str:
    return r.inputs.get(key) or f"{r.name}-abcdefg"


def test_name_lengths_at_the_longest_prefix(longest):
    assert len(max_prefix()) == 24
    checked = set()
    for r in longest.resources:
        if r.typ in NAME_LIMITS:
            key, limit = NAME_LIMITS[r.typ]
            name = physical_name(r, key)
            assert len(name) <= limit, f"{r.typ} {name!r}: {len(name)} > {limit} characters"
            checked.add(r.typ)
    assert checked == set(NAME_LIMITS)  # every rule applied to at least one resource


def test_bucket_names_are_valid(longest):
    for r in longest.of("aws:s3/bucket:Bucket"):
        name = physical_name(r, "bucket")
        assert re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", name) and ".." not in name


def test_no_reserved_concurrency_by_default(graph, package_dir):
    """New accounts (concurrency quota 10 or 50) refuse any reservation that leaves fewer than
    10 unreserved executions: a default reservation would fail `pulumi up` there."""
    for f in graph.of("aws:lambda/function:Function"):
        assert f.inputs.get("reservedConcurrentExecutions") is None, f.name
    opted = run_program(base_config(package_dir, reservedConcurrency='{"train": 5}'))
    train = opted.one("aws:lambda/function:Function", "mlk-test-train")
    assert train.inputs["reservedConcurrentExecutions"] == 5
    others = [f for f in opted.of("aws:lambda/function:Function") if f is not train]
    assert all(f.inputs.get("reservedConcurrentExecutions") is None for f in others)
    # the mapping never polls faster than the reservation lets the function run
    mapping = opted.one("aws:lambda/eventSourceMapping:EventSourceMapping",
                        "mlk-test-train-to-train")
    assert mapping.inputs["scalingConfig"]["maximumConcurrency"] <= 5


def test_sqs_mapping_concurrency_within_sqs_limits(graph):
    for m in graph.of("aws:lambda/eventSourceMapping:EventSourceMapping"):
        cap = (m.inputs.get("scalingConfig") or {}).get("maximumConcurrency")
        assert cap is None or 2 <= cap <= 1000


def test_visibility_timeout_at_least_six_times_consumer_timeout(graph):
    for q in TOPO.queues:
        queue = graph.one("aws:sqs/queue:Queue", f"mlk-test-{q.name}")
        consumer = graph.one("aws:lambda/function:Function", f"mlk-test-{q.consumer}")
        assert queue.inputs["visibilityTimeoutSeconds"] >= 6 * consumer.inputs["timeout"]
        assert queue.inputs["visibilityTimeoutSeconds"] <= 12 * 3600  # SQS maximum


def test_lambda_limits(graph):
    for f in graph.of("aws:lambda/function:Function"):
        assert 128 <= f.inputs["memorySize"] <= 10240 and 1 <= f.inputs["timeout"] <= 900


def test_bucket_notification_depends_on_the_queue_policy(graph):
    """S3 checks it may send to the queue when the notification is put: the queue policy must
    exist first, or `pulumi up` fails on a race."""
    policies = {r.inputs["queueUrl"]: r.name for r in graph.of("aws:sqs/queuePolicy:QueuePolicy")}
    for notif in graph.of("aws:s3/bucketNotification:BucketNotification"):
        deps = set(graph.depends_on[(notif.typ, notif.name)])
        for q in notif.inputs["queues"]:
            queue_name = q["queueArn"].rsplit(":", 1)[1]
            url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{queue_name}"
            assert ("aws:sqs/queuePolicy:QueuePolicy", policies[url]) in deps


def test_lambda_image_uris_are_digest_only(graph, package_dir):
    """Lambda refuses an image reference with a tag and a digest (docker-build's ref is
    repo:tag@sha256:...): whatever the source of the image, Lambda gets repo@sha256:..."""
    repo = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlk-train"
    digest = "sha256:" + "c" * 64
    graphs = {"prebuilt tag (resolved)": graph,
              "prebuilt tag+digest": run_program(base_config(
                  package_dir, trainImageUri=f"{repo}:v1@{digest}")),
              "prebuilt digest": run_program(base_config(
                  package_dir, trainImageUri=f"{repo}@{digest}"))}
    pytest.importorskip("pulumi_docker_build")
    graphs["built by the program"] = run_program(base_config(package_dir, trainImageUri=None))
    for how, g in graphs.items():
        images = [f for f in g.of("aws:lambda/function:Function")
                  if f.inputs["packageType"] == "Image"]
        assert images, how
        for f in images:
            assert DIGEST_ONLY.match(f.inputs["imageUri"]), (how, f.inputs["imageUri"])
    for how in ("prebuilt tag+digest", "prebuilt digest"):
        (f,) = [f for f in graphs[how].of("aws:lambda/function:Function")
                if f.inputs["packageType"] == "Image"]
        assert f.inputs["imageUri"] == f"{repo}@{digest}"


def test_every_alarm_within_cloudwatch_limits(graph):
    alarms = graph.of("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert alarms
    for a in alarms:
        period, n = a.inputs["period"], a.inputs["evaluationPeriods"]
        assert period in (10, 20, 30) or period % 60 == 0
        assert period * n <= (MAX_SHORT_WINDOW_S if period < 3600 else MAX_ALARM_WINDOW_S)
        assert ("statistic" in a.inputs) != ("extendedStatistic" in a.inputs)
