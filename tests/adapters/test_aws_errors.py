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


class DeniedHead:
    """S3 as a caller without an unconditioned ListBucket sees it: a HEAD/GET of any key is
    403; a listing answers per `listing` (a list of keys, or an exception when denied too)."""

    def __init__(self, listing) -> None:
        self.listing = listing

    def head_object(self, **kwargs):
        raise _error("403", 403)

    def get_object(self, **kwargs):
        raise _error("AccessDenied", 403)

    def list_objects_v2(self, **kwargs):
        if isinstance(self.listing, Exception):
            raise self.listing
        return {"Contents": [{"Key": k} for k in self.listing if k.startswith(kwargs["Prefix"])]}


def test_a_403_on_a_missing_key_is_not_found_when_the_key_can_be_listed():
    gone = S3ObjectStore("b", lambda: DeniedHead(["datasets/m/a.csv.bak"]))
    with pytest.raises(NotFound):
        gone.head("datasets/m/a.csv")
    with pytest.raises(NotFound):
        gone.get("datasets/m/a.csv")
    there = S3ObjectStore("b", lambda: DeniedHead(["datasets/m/a.csv"]))  # a real denial
    with pytest.raises(StorageError) as info:
        there.head("datasets/m/a.csv")
    assert type(info.value) is StorageError
    unlisted = S3ObjectStore("b", lambda: DeniedHead(_error("AccessDenied", 403)))
    with pytest.raises(StorageError) as info:
        unlisted.get("models/m/x")
    assert type(info.value) is StorageError and "AccessDenied" in info.value.message
