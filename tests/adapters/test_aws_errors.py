"""botocore errors become the kit's errors (checked with a client that fails on purpose)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from mlops_kit.adapters.aws import DynamoTable, S3ObjectStore, SnsNotifier
from mlops_kit.adapters.aws.notifier import sns_subject
from mlops_kit.errors import ConditionFailed, NotFound, StorageError, TransientError
from mlops_kit.ports import Absent


def _error(code: str, status: int, **extra) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"},
                        "ResponseMetadata": {"HTTPStatusCode": status}, **extra}, "Op")


class Failing:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.calls = 0

    def __getattr__(self, name):
        def call(**kwargs):
            self.calls += 1
            raise self.exc
        return call


@pytest.mark.parametrize(("exc", "expected"), [
    (_error("ProvisionedThroughputExceededException", 400), TransientError),
    (_error("ThrottlingException", 400), TransientError),
    (_error("InternalServerError", 500), TransientError),
    (_error("ConditionalCheckFailedException", 400), ConditionFailed),
    (_error("TransactionCanceledException", 400,
            CancellationReasons=[{"Code": "ConditionalCheckFailed"}]), ConditionFailed),
    (_error("TransactionCanceledException", 400,
            CancellationReasons=[{"Code": "TransactionConflict"}]), TransientError),
    (_error("AccessDeniedException", 400), StorageError),
    (EndpointConnectionError(endpoint_url="http://x"), TransientError),
])
def test_table_errors_are_mapped(exc, expected):
    fake = Failing(exc)
    with pytest.raises(expected) as info:
        DynamoTable("t", lambda: fake).put("P", "S", {"a": 1.5}, Absent())
    assert type(info.value) is expected and fake.calls == 1
    assert "Traceback" not in info.value.message


def test_store_not_found_and_throttle():
    with pytest.raises(NotFound):
        S3ObjectStore("b", lambda: Failing(_error("404", 404))).head("models/x")
    with pytest.raises(TransientError):
        S3ObjectStore("b", lambda: Failing(_error("SlowDown", 503))).put("models/x", b"1")


def test_sns_subject_is_made_valid():
    assert sns_subject("mlops-kit: churn v2 — promoted\n") == "mlops-kit: churn v2 ? promoted"
    assert len(sns_subject("x" * 300)) == 100
    fake = Failing(_error("Throttling", 400))
    with pytest.raises(TransientError):
        SnsNotifier("arn:aws:sns:us-east-1:1:t", lambda: fake).publish("s", {"a": 1})
