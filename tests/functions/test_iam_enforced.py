"""A call outside a function's policy fails loudly under the IAM-enforced emulation, as on AWS.

The static table of calls a function must never make (tests/infra/test_policy_coverage.py,
FORBIDDEN, evaluated against the rendered policy there) is replayed here against moto with each
function's own keys: every one is refused, while the operator (admin) may make the same call,
so the refusal comes from the policy and not from a broken setup. Through the adapters a refusal
is a StorageError naming the call, never a NotFound or a silent success; a handler run under
another function's role fails its invocation.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from mlops_kit.errors import NotFound, StorageError
from tests.infra.test_policy_coverage import FORBIDDEN
from tests.moto_support import aws_world

pytestmark = [pytest.mark.iam_enforced, pytest.mark.filterwarnings("ignore")]

DENIED = {"AccessDenied", "AccessDeniedException", "403"}


@pytest.fixture(scope="module")
def w():
    from mlops_kit.core.synthetic import CHURN_SPEC, churn_csv

    with aws_world(spec=CHURN_SPEC) as world:
        world.put("datasets/churn/upload.csv", churn_csv(300, seed=1))
        _drain(world)
        yield world


def _drain(w) -> None:
    """Drop the notifications waiting in the validate queue (the operator's uploads)."""
    url = w.res.queue_urls["validate"]
    while msgs := w.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for m in msgs:
            w.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def _call(w, client, service: str, op: str, target: str):
    """One row of FORBIDDEN as the boto3 call it stands for."""
    res = w.res
    if service == "s3":
        if target.startswith("list:"):
            _, store, prefix = target.split(":", 2)
            return client.list_objects_v2(Bucket=res.buckets[store], Prefix=prefix)
        store, key = target.split(":", 1)
        bucket = res.buckets[store]
        if op == "HeadObject:missing":
            return client.head_object(Bucket=bucket, Key=key)
        return {"PutObject": lambda: client.put_object(Bucket=bucket, Key=key, Body=b"x"),
                "GetObject": lambda: client.get_object(Bucket=bucket, Key=key),
                "DeleteObject": lambda: client.delete_object(Bucket=bucket, Key=key)}[op]()
    if service == "dynamodb":
        item = {"pk": {"S": "IAM#test"}, "sk": {"S": "x"}}
        if op == "PutItem":
            return client.put_item(TableName=res.table, Item=item)
        return client.delete_item(TableName=res.table, Key=item)
    if service == "sqs":
        return client.send_message(QueueUrl=res.queue_urls[target.split(":")[1]],
                                   MessageBody=json.dumps({"type": "train"}))
    raise AssertionError(f"no call for {service} {op}")


@pytest.mark.parametrize(("fn", "row"), [(fn, row) for fn, rows in FORBIDDEN.items()
                                         for row in rows], ids=str)
def test_every_forbidden_call_is_refused_to_the_function_and_allowed_to_the_operator(w, fn, row):
    service, op, target = row
    with pytest.raises(ClientError) as refused:
        _call(w, w.client_as(fn, service), service, op, target)
    code = refused.value.response["Error"]["Code"]
    assert code in DENIED, (fn, row, refused.value.response["Error"])
    try:  # the operator may: it succeeds, or fails for another reason (a key deleted above)
        _call(w, w.client(service), service, op, target)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in ("404", "NoSuchKey"), (fn, row, exc.response)


def _as(w, fn):
    """Calls in this block are made with `fn`'s keys, as its handler's are."""
    from mlops_kit.adapters.aws import acting_as

    return acting_as(w.res.identities[fn])


def test_serve_writing_a_dataset_is_a_storage_error_naming_the_call(w):
    ctx = w.backend.ctx  # the adapters the handlers get (clients resolved per call)
    with _as(w, "serve"), pytest.raises(StorageError) as info:
        ctx.store.put("datasets/churn/evil.csv", b"a,b\n")
    assert not isinstance(info.value, NotFound)
    assert "datasets/churn/evil.csv" in info.value.message and "AccessDenied" in info.value.message
    assert "datasets/churn/evil.csv" not in [o.key for o in w.backend.ctx.store.list(
        "datasets/churn/")]


def test_monitor_sending_to_the_train_queue_is_refused(w):
    def queued():
        return int(w.sqs.get_queue_attributes(
            QueueUrl=w.res.queue_urls["train"], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"])

    before = queued()
    with _as(w, "monitor"), pytest.raises(StorageError) as info:
        w.backend.ctx.train_queue.send({"type": "train", "model": "churn"})
    assert not isinstance(info.value, NotFound)
    assert queued() == before


def test_a_missing_key_is_403_to_a_function_yet_not_found_where_it_may_probe(w):
    """S3 answers a GET of a missing key with 403 to a caller that may not list the bucket
    (no function may). Where the role may list the key's prefix (a `probes` grant: validate
    on specs/), the adapter lists that one key and answers NotFound, as every backend does;
    elsewhere (serve on models/) the denial stands. exists() is that one-key listing."""
    store = w.backend.ctx.store
    with pytest.raises(ClientError) as raw:  # what S3 itself answers validate
        w.client_as("validate", "s3").get_object(Bucket=w.res.data_bucket,
                                                 Key="specs/nothing.yaml")
    assert raw.value.response["Error"]["Code"] == "AccessDenied"
    with _as(w, "validate"):
        with pytest.raises(NotFound):
            store.get("specs/nothing.yaml")
        assert store.exists("specs/churn.yaml") is True
        assert store.exists("specs/churn.yml") is False
    with _as(w, "serve"), pytest.raises(StorageError) as denied:
        store.get("models/churn/000009/model.onnx")
    assert not isinstance(denied.value, NotFound) and "AccessDenied" in denied.value.message
    with pytest.raises(NotFound):  # the operator, who may list the bucket, gets a 404
        store.get("models/churn/000009/model.onnx")


def test_a_handler_under_another_functions_role_fails_its_message_into_a_retry(w):
    """train's code run with serve's keys: its first call (listing specs/ for the spec) is
    refused; a refusal is a retryable StorageError, so the message is reported failed (SQS
    retries it, then the DLQ and its alarm), and nothing is registered."""
    from mlops_kit.emulate import acting

    job = {"type": "train", "model": "churn", "dataset_key": "datasets/churn/upload.csv",
           "sha256": "0" * 64, "rows": 300}
    event = {"Records": [{"messageId": "m-1", "receiptHandle": "r", "body": json.dumps(job),
                          "attributes": {"ApproximateReceiveCount": "1"},
                          "messageAttributes": {}, "eventSource": "aws:sqs",
                          "eventSourceARN": w.res.queue_arns["train"],
                          "awsRegion": w.res.region}]}
    wrong = acting(w.res.identities["serve"], w.fns["train"].module.handler)
    assert wrong(event, None)["batchItemFailures"] == [{"itemIdentifier": "m-1"}]
    assert w.backend.ctx.registry.list_versions("churn") == []


def test_a_handler_under_another_functions_role_fails_its_invocation(w):
    """The monitor's code run with validate's keys (get/put on the table, no Query): its first
    call (listing the models) is refused and the invocation fails, rather than reporting "no
    models"."""
    from mlops_kit.emulate import acting

    monitor = acting(w.res.identities["validate"], w.fns["monitor"].module.handler)
    with pytest.raises(StorageError) as info:
        monitor({"detail-type": "Scheduled Event"}, None)
    assert not isinstance(info.value, NotFound)
    assert w.fns["monitor"].handler({"detail-type": "Scheduled Event"}, None) == {
        "status": "ok", "reports": [], "errors": []}  # under its own role: nothing to monitor yet


def test_validate_under_trains_role_fails_the_message_into_a_retry(w):
    from mlops_kit.emulate import acting, sqs_record

    _drain(w)  # notifications of the replay's uploads
    w.put("datasets/churn/again.csv", b"x")
    msg = w.sqs.receive_message(QueueUrl=w.res.queue_urls["validate"], WaitTimeSeconds=0,
                                AttributeNames=["All"])["Messages"][0]
    event = {"Records": [sqs_record(msg, w.res.queue_arns["validate"], w.res.region)]}
    wrong = acting(w.res.identities["train"], w.fns["validate"].module.handler)
    assert wrong(event, None)["batchItemFailures"] == [{"itemIdentifier": msg["MessageId"]}]
    assert not w.backend.ctx.store.exists("quarantine/churn/again.csv")  # train may not write it
