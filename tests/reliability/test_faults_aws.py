"""Faults on the AWS path under moto, through the real handlers (S3 notification -> SQS ->
validate -> SQS -> train): a crash between artifact and registry write, throttling and 5xx
answered by bounded botocore retries, a permanently throttled table ending in the DLQ, a
duplicate delivery, and bad datasets quarantined in the data bucket."""

from __future__ import annotations

import hashlib
import json

import pytest

from mlops_kit.core.synthetic import churn_csv
from mlops_kit.errors import TransientError
from tests.reliability.datasets import BAD
from tests.support import feature_records

pytestmark = pytest.mark.iam_enforced
DATASET = "datasets/churn/a.csv"


def upload(cloud, key: str, data: bytes) -> None:
    cloud.put(key, data)


def serve(cloud, records) -> tuple[int, dict]:
    from mlops_kit.emulate import context_for, http_api_event

    event = http_api_event("POST", "/v1/models/churn:predict",
                           {"content-type": "application/json"},
                           json.dumps({"instances": records}).encode())
    out = cloud.fns["serve"].handler(event, context_for(cloud.topo, "serve"))
    return out["statusCode"], json.loads(out["body"])


def dlq(cloud, queue: str) -> list[dict]:
    return cloud.sqs.receive_message(QueueUrl=cloud.res.queue_urls[f"{queue}-dlq"],
                                     MaxNumberOfMessages=10, VisibilityTimeout=0
                                     ).get("Messages", [])


def artifact_keys(cloud) -> list[str]:
    resp = cloud.s3.list_objects_v2(Bucket=cloud.res.artifact_bucket, Prefix="models/")
    return [o["Key"] for o in resp.get("Contents", [])]


def assert_one_good_version(cloud, version=1):
    reg = cloud.backend.ctx.registry
    versions = reg.list_versions("churn")
    assert [v["version"] for v in versions] == [version]
    record = versions[0]
    assert record["status"] == "registered"
    body = cloud.s3.get_object(Bucket=cloud.res.artifact_bucket,
                               Key=record["artifact_key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == record["sha256"]
    assert reg.champion_version("churn") == version
    status, out = serve(cloud, feature_records(2))
    assert status == 200 and out["version"] == version and len(out["predictions"]) == 2


def test_crash_between_artifact_and_registry_write_then_retry(cloud, monkeypatch):
    from mlops_kit.core.registry import model_registry as registry_mod
    real = registry_mod.Registry.complete_version
    crashes = []

    def crash_once(self, *a, **k):
        if not crashes:  # a timeout (a killed container is redelivered the same way)
            crashes.append(1)
            raise TransientError("table write timed out")
        return real(self, *a, **k)

    monkeypatch.setattr(registry_mod.Registry, "complete_version", crash_once)
    upload(cloud, DATASET, churn_csv(700, seed=31))
    assert cloud.pumps["validate"].drain() == 1 and cloud.pumps["validate"].failed == 0
    train = cloud.pumps["train"]
    assert train.poll_once() == 1 and train.failed == 1
    # the artifact is written, the version is only reserved: nothing is served
    assert "models/churn/000001/model.onnx" in artifact_keys(cloud)
    reg = cloud.backend.ctx.registry
    assert [v["status"] for v in reg.list_versions("churn")] == ["pending"]
    assert reg.champion_version("churn") is None
    status, out = serve(cloud, feature_records(1))
    assert status == 404 and "no champion" in out["error"]
    # redelivery completes the same version
    assert train.drain() == 1 and train.delivered == 1
    assert_one_good_version(cloud)
    assert dlq(cloud, "train") == []


def test_duplicate_delivery_of_the_same_upload_gives_one_version(cloud):
    upload(cloud, DATASET, churn_csv(600, seed=32))
    sqs, url = cloud.sqs, cloud.res.queue_urls["validate"]
    msg = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"][0]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"],
                                  VisibilityTimeout=0)
    sqs.send_message(QueueUrl=url, MessageBody=msg["Body"])  # at-least-once: delivered twice
    assert cloud.pumps["validate"].drain() == 2 and cloud.pumps["validate"].failed == 0
    assert cloud.pumps["train"].drain() == 1
    assert_one_good_version(cloud)


# -- throttling and 5xx: botocore's bounded retries, then the queue's ------------------------


class Throttle:
    """A botocore `before-send` hook answering matching requests with a throttling / 5xx error
    `times` times (negative: forever) -- what DynamoDB or S3 sends when overloaded."""

    def __init__(self, times: int, status: int, body: bytes, match) -> None:
        self.left, self.status, self.body, self.match = times, status, body, match
        self.injected = 0

    def __call__(self, request, **kwargs):
        from botocore.awsrequest import AWSResponse

        if self.left == 0 or not self.match(request):
            return None
        self.left -= 1
        self.injected += 1
        return AWSResponse(request.url, self.status, {"x-amzn-requestid": "throttled"},
                           _Raw(self.body))


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **kwargs):
        yield self.data


@pytest.fixture
def no_backoff(monkeypatch):
    """Retries without sleeping (the number of attempts is what matters here)."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0)


def _body(request) -> bytes:
    body = request.body
    return body if isinstance(body, bytes) else (body or b"").encode() \
        if isinstance(body, str) else b""


def test_s3_slowdown_on_the_artifact_write_is_retried_by_the_client(cloud, no_backoff):
    throttle = Throttle(2, 503, b"<Error><Code>SlowDown</Code><Message>Reduce your request "
                        b"rate</Message></Error>",
                        lambda r: r.method == "PUT" and r.url.split("?")[0].endswith(
                            "/models/churn/000001/model.onnx"))
    cloud.client_as("train", "s3").meta.events.register_first("before-send.s3.PutObject", throttle)
    upload(cloud, DATASET, churn_csv(600, seed=33))
    cloud.pumps["validate"].drain()
    train = cloud.pumps["train"]
    assert train.drain() == 1
    assert throttle.injected == 2 and train.failed == 0 and train.delivered == 1
    assert_one_good_version(cloud)


THROTTLED = (b'{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceeded'
             b'Exception","message":"The level of configured provisioned throughput for the '
             b'table was exceeded"}')


def _run_lookup(request) -> bool:  # reserve_version's first read: GetItem of RUN#<key>
    return b'"RUN#' in _body(request)


def test_dynamodb_throttling_is_retried_by_the_client(cloud, no_backoff):
    throttle = Throttle(3, 400, THROTTLED, _run_lookup)
    cloud.client_as("train", "dynamodb").meta.events.register_first(
        "before-send.dynamodb.GetItem", throttle)
    upload(cloud, DATASET, churn_csv(600, seed=34))
    cloud.pumps["validate"].drain()
    assert cloud.pumps["train"].drain() == 1
    assert throttle.injected == 3 and cloud.pumps["train"].failed == 0
    assert_one_good_version(cloud)


def test_permanent_throttling_ends_in_the_dlq_then_a_redrive_completes_once(cloud, no_backoff):
    """The table throttles forever: each invocation gives up after the client's bounded
    attempts, SQS retries the message and dead-letters it after maxReceiveCount -- nothing is
    lost, nothing half-registered, nothing served. Once the table recovers, a redrive from the
    DLQ trains and registers exactly one version."""
    throttle = Throttle(-1, 400, THROTTLED, _run_lookup)
    ddb = cloud.client_as("train", "dynamodb")  # the client train's handler uses
    ddb.meta.events.register_first("before-send.dynamodb.GetItem", throttle)
    upload(cloud, DATASET, churn_csv(600, seed=35))
    cloud.pumps["validate"].drain()
    train = cloud.pumps["train"]
    queue = next(q for q in cloud.topo.queues if q.name == "train")
    attempts = ddb.meta.config.retries["total_max_attempts"]  # first try + bounded retries
    assert 1 < attempts <= 10
    assert train.drain() == queue.max_receives  # then SQS redrives it instead of delivering
    assert train.failed == queue.max_receives and train.delivered == 0
    assert throttle.injected == queue.max_receives * attempts  # bounded: no retry storm
    dead = dlq(cloud, "train")
    assert len(dead) == 1 and json.loads(dead[0]["Body"])["dataset_key"] == DATASET
    assert cloud.backend.ctx.registry.list_versions("churn") == []
    assert artifact_keys(cloud) == []
    assert serve(cloud, feature_records(1))[0] == 404
    # the table recovers; an operator redrives the DLQ
    ddb.meta.events.unregister("before-send.dynamodb.GetItem", throttle)
    cloud.sqs.send_message(QueueUrl=cloud.res.queue_urls["train"], MessageBody=dead[0]["Body"])
    cloud.sqs.delete_message(QueueUrl=cloud.res.queue_urls["train-dlq"],
                             ReceiptHandle=dead[0]["ReceiptHandle"])
    assert train.drain() == 1 and train.delivered == 1
    assert_one_good_version(cloud)


def test_lost_response_on_the_registry_write_is_finished_by_the_retry(cloud, no_backoff):
    """The registry write lands but every response to it is throttled (the client never learns
    it succeeded): the invocation fails after the registry write and before the promotion.
    The redelivered job does not train again; it sees the registered version and finishes the
    promotion. One version, one champion move."""
    # complete_version: the version and the model's summary in one transaction (issue 28)
    throttle = Throttle(-1, 400, THROTTLED,
                        lambda r: b"VERSION#" in _body(r) and b'"registered"' in _body(r))
    cloud.client_as("train", "dynamodb").meta.events.register_first(
        "before-send.dynamodb.TransactWriteItems", throttle)
    upload(cloud, DATASET, churn_csv(600, seed=36))
    cloud.pumps["validate"].drain()
    train = cloud.pumps["train"]
    assert train.poll_once() == 1 and train.failed == 1
    reg = cloud.backend.ctx.registry
    assert [v["status"] for v in reg.list_versions("churn")] == ["registered"]
    assert reg.champion_version("churn") is None  # registered, not yet promoted
    assert train.drain() == 1 and train.delivered == 1
    assert_one_good_version(cloud)
    assert len([h for h in reg.history("churn") if h.get("to_version") == 1]) == 1


# -- bad datasets --------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["ragged rows", "latin-1 encoding", "empty file",
                                  "duplicate headers", "parquet with wrong types",
                                  "corrupt parquet"])
def test_bad_dataset_is_quarantined_in_the_data_bucket(cloud, case):
    filename, data, rules = BAD[case]
    key = f"datasets/churn/{filename}"
    upload(cloud, key, data)
    assert cloud.pumps["validate"].drain() == 1 and cloud.pumps["validate"].failed == 0
    bucket = cloud.res.data_bucket
    get = lambda k: cloud.s3.get_object(Bucket=bucket, Key=k)["Body"].read()  # noqa: E731
    assert get(key) == data
    assert get(f"quarantine/churn/{filename}") == data
    report = json.loads(get(f"quarantine/churn/{filename}.report.json"))
    assert report["passed"] is False and report["dataset_key"] == key
    assert rules <= {r["rule"] for r in report["rules"] if not r["passed"]}
    assert cloud.pumps["train"].drain() == 0
    assert cloud.backend.ctx.registry.list_versions("churn") == []
    assert dlq(cloud, "validate") == []
