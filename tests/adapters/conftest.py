"""One contract suite, every adapter: each fixture is parametrized over the local adapters and
the AWS adapters under moto (the shared `aws` fixture of tests/conftest.py: moto starts before
any client; the client cache is cleared)."""

from __future__ import annotations

from functools import partial

import pytest

from tests.moto_support import REGION


def _client(service):
    from mlops_kit.adapters.aws import client

    return partial(client, service, region=REGION)


@pytest.fixture(params=["local", "s3", "s3-routed"])
def store(request, tmp_path):
    if request.param == "local":
        from mlops_kit.adapters.local import FileObjectStore

        return FileObjectStore(tmp_path / "store")
    request.getfixturevalue("aws")
    from mlops_kit.adapters.aws import PrefixRoutedStore, S3ObjectStore
    from mlops_kit.topology import default_topology

    s3 = _client("s3")
    if request.param == "s3":
        s3().create_bucket(Bucket="one")
        return S3ObjectStore("one", s3)
    buckets = {}
    for st in default_topology().stores:
        s3().create_bucket(Bucket=f"b-{st.name}")
        buckets[st.name] = S3ObjectStore(f"b-{st.name}", s3)
    store = PrefixRoutedStore({p: buckets[st.name] for st in default_topology().stores
                               for p in st.prefixes})
    store.buckets = buckets  # for tests that check which bucket holds a key
    return store


@pytest.fixture(params=["local", "dynamodb"])
def table(request, tmp_path):
    if request.param == "local":
        from mlops_kit.adapters.local import SqliteTable

        return SqliteTable(tmp_path / "t.db")
    request.getfixturevalue("aws")
    from mlops_kit.adapters.aws import DynamoTable

    ddb = _client("dynamodb")
    ddb().create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                       KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                  {"AttributeName": "sk", "KeyType": "RANGE"}],
                       AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                             {"AttributeName": "sk", "AttributeType": "S"}])
    return DynamoTable("t", ddb)


MAX_RECEIVES = 2
VISIBILITY = 1


@pytest.fixture(params=["local", "sqs"])
def queue(request, tmp_path):
    if request.param == "local":
        from mlops_kit.adapters.local import SqliteQueue

        return SqliteQueue(tmp_path / "q.db", "jobs", visibility_timeout=VISIBILITY,
                           max_receives=MAX_RECEIVES)
    request.getfixturevalue("aws")
    import json

    from mlops_kit.adapters.aws import SqsQueue

    sqs = _client("sqs")
    dlq = sqs().create_queue(QueueName="jobs-dlq")["QueueUrl"]
    dlq_arn = sqs().get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    url = sqs().create_queue(QueueName="jobs", Attributes={
        "VisibilityTimeout": str(VISIBILITY),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                     "maxReceiveCount": str(MAX_RECEIVES)})})["QueueUrl"]
    return SqsQueue(url, sqs, name="jobs")
