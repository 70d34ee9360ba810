"""Fixtures for the reliability suite: a served trained model (module-scoped, so hypothesis can
reuse it), and the AWS path under moto (buckets, queues with redrive, table) wired through the
real AWS adapters."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from mlops_kit.auth import ensure_token
from tests.support import make_backend

REGION = "us-east-1"
AWS_MAX_RECEIVES = 3


@pytest.fixture(scope="module")
def served(tmp_path_factory, _trained_template):
    """(backend, api, token) for a trained churn model with auth on; one per test module."""
    from mlops_kit.server import build_api

    ws = tmp_path_factory.mktemp("served") / "ws"
    shutil.copytree(_trained_template, ws)
    backend = make_backend(ws)
    token = ensure_token(ws)
    assert token
    return backend, build_api(backend, auth=True, workspace=ws), token


@pytest.fixture(scope="module")
def server(served):
    from mlops_kit.server import ServerThread

    backend, api, token = served
    srv = ServerThread(api).start()
    yield srv, token, backend
    srv.stop()


@pytest.fixture
def moto_env():
    """An in-process moto account; the mock starts before any client and the client cache is
    cleared on both sides (clients are lazy + cached in mlops_kit.adapters.aws)."""
    from moto import mock_aws

    from mlops_kit.adapters.aws import clear_clients

    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}
    old = {k: os.environ.get(k) for k in [*env, "AWS_ENDPOINT_URL"]}
    os.environ.update(env)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    clear_clients()
    with mock_aws():
        yield
    clear_clients()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def aws_backend(moto_env):
    """The AWS adapters (S3 data + artifact buckets, SQS with DLQ redrive, DynamoDB) under moto,
    built by the production factory from Settings."""
    from mlops_kit.adapters.aws import client
    from mlops_kit.settings import Settings
    from mlops_kit.wiring import aws_backend as build

    s3, sqs, ddb = (client(s, region=REGION) for s in ("s3", "sqs", "dynamodb"))
    for bucket in ("rel-data", "rel-artifacts"):
        s3.create_bucket(Bucket=bucket)
    ddb.create_table(TableName="rel-registry", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"}])
    urls = {}
    for name, visibility in (("validate", 60), ("train", 60)):
        dlq = sqs.create_queue(QueueName=f"rel-{name}-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        urls[name] = sqs.create_queue(QueueName=f"rel-{name}", Attributes={
            "VisibilityTimeout": str(visibility),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn,
                                         "maxReceiveCount": str(AWS_MAX_RECEIVES)})})["QueueUrl"]
    settings = Settings(backend="aws", region=REGION, data_bucket="rel-data",
                        artifact_bucket="rel-artifacts", table_name="rel-registry",
                        validate_queue_url=urls["validate"], train_queue_url=urls["train"],
                        refresh_seconds=0.0)
    return build(settings)
