"""One contract suite, every adapter: each fixture is parametrized over the local adapters,
the AWS adapters under moto (the shared `aws` fixture of tests/conftest.py: moto starts before
any client; the client cache is cleared) and the Azure adapters under Azurite (one per session;
fresh resource names per test)."""

from __future__ import annotations

import uuid
from functools import partial

import pytest

from tests.moto_support import REGION


def _client(service):
    from mlops_kit.adapters.aws import client

    return partial(client, service, region=REGION)


class AzureAccount:
    """Service clients on the session's Azurite; deletes what a test created."""

    def __init__(self, connection_string: str) -> None:
        from mlops_kit.adapters.azure import StorageAccount, clear_clients
        from mlops_kit.adapters.azure._clients import blob_service, queue_service, table_service

        clear_clients()
        self.account = StorageAccount(connection_string=connection_string)
        self.blob = partial(blob_service, self.account)
        self.queue = partial(queue_service, self.account)
        self.table = partial(table_service, self.account)
        self.created: list = []

    @staticmethod
    def unique(stem: str) -> str:
        return f"{stem}{uuid.uuid4().hex[:10]}"

    def container(self, stem: str = "c") -> str:
        name = self.unique(stem)
        self.blob().create_container(name)
        self.created.append(partial(self.blob().delete_container, name))
        return name

    def make_queue(self, stem: str = "q") -> str:
        name = self.unique(stem)
        for q in (name, f"{name}-poison"):
            self.queue().create_queue(q)
            self.created.append(partial(self.queue().delete_queue, q))
        return name

    def make_table(self, stem: str = "t") -> str:
        name = self.unique(stem)
        self.table().create_table(name)
        self.created.append(partial(self.table().delete_table, name))
        return name

    def cleanup(self) -> None:
        from mlops_kit.adapters.azure import clear_clients

        for delete in reversed(self.created):
            delete()
        clear_clients()


@pytest.fixture
def azure(azurite):
    account = AzureAccount(azurite.connection_string)
    yield account
    account.cleanup()


@pytest.fixture(params=["local", "s3", "s3-routed", "blob", "blob-routed"])
def store(request, tmp_path):
    if request.param == "local":
        from mlops_kit.adapters.local import FileObjectStore

        return FileObjectStore(tmp_path / "store")
    if request.param.startswith("blob"):
        return _blob_store(request.param, request.getfixturevalue("azure"))
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


def _blob_store(kind, azure):
    from mlops_kit.adapters.azure import BlobObjectStore
    from mlops_kit.adapters.routing import PrefixRoutedStore
    from mlops_kit.topology import default_topology

    if kind == "blob":
        return BlobObjectStore(azure.container(), azure.blob)
    containers = {st.name: BlobObjectStore(azure.container(st.name), azure.blob)
                  for st in default_topology().stores}
    store = PrefixRoutedStore({p: containers[st.name] for st in default_topology().stores
                               for p in st.prefixes})
    store.buckets = containers  # for tests that check which container holds a key
    return store


@pytest.fixture(params=["local", "dynamodb", "azure-table"])
def table(request, tmp_path):
    if request.param == "local":
        from mlops_kit.adapters.local import SqliteTable

        return SqliteTable(tmp_path / "t.db")
    if request.param == "azure-table":
        from mlops_kit.adapters.azure import AzureTable

        azure = request.getfixturevalue("azure")
        return AzureTable(azure.make_table(), azure.table)
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


@pytest.fixture(params=["local", "sqs", "azure-queue"])
def queue(request, tmp_path):
    if request.param == "local":
        from mlops_kit.adapters.local import SqliteQueue

        return SqliteQueue(tmp_path / "q.db", "jobs", visibility_timeout=VISIBILITY,
                           max_receives=MAX_RECEIVES)
    if request.param == "azure-queue":
        from mlops_kit.adapters.azure import StorageQueue

        azure = request.getfixturevalue("azure")
        return StorageQueue(azure.make_queue(), azure.queue, visibility_timeout=VISIBILITY,
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
