"""Batch scoring end to end on both clouds (issue 27's "Done when"), through the deployed
functions: on AWS the validate function under its own IAM role against moto (S3 -> SQS
notifications as moto sends them, tests/moto_support.py), on Azure the Functions app against
Azurite (Event Grid messages as the subscription delivers them, tests/functions/
test_azure_app.py). The six cases are asserted as a user sees them: the manifest, the parts'
`version` column, rejects.parquet, the quarantined copy, the notifications, the job record.

Queue deliveries are played by the test (`Cloud.run`): every message on the validate queue is
taken off and handed to the function; a message whose invocation fails (AWS: listed in
batchItemFailures; Azure: the function raises, the host retries) is delivered again with the
next dequeue count, as the Lambda SQS event source and the Functions host do.

The provider rules played here: S3 event notifications "are designed to be delivered at least
once" (https://docs.aws.amazon.com/AmazonS3/latest/userguide/EventNotifications.html), as are
Event Grid events (https://learn.microsoft.com/en-us/azure/event-grid/delivery-and-retry);
a Lambda SQS batch retries only the messages in batchItemFailures
(https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html); a queue-
triggered Azure function that raises has its message retried with dequeueCount + 1
(https://learn.microsoft.com/en-us/azure/azure-functions/functions-bindings-storage-queue-trigger#poison-messages)."""

from __future__ import annotations

import io
import json
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from mlops_kit.core import layout
from mlops_kit.core.synthetic import churn_csv

# `app`: the Functions app indexed on Azurite, the fixture of tests/functions/test_azure_app.py
from tests.functions.test_azure_app import app, grid_message, message  # noqa: F401
from tests.support import FAST_SPEC

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


class Cloud(ABC):
    """What a test needs of a deployment: uploads, the validate queue, objects, alerts."""

    name: str

    @abstractmethod
    def put(self, key: str, body: bytes) -> None:
        raise NotImplementedError

    @abstractmethod
    def get(self, key: str) -> bytes:
        raise NotImplementedError

    @abstractmethod
    def exists(self, key: str) -> bool:
        raise NotImplementedError

    @abstractmethod
    def _pending(self) -> list[str]:  # take every validate-queue message off the queue
        raise NotImplementedError

    @abstractmethod
    def _deliver(self, body: str, attempt: int) -> bool:  # acked?
        raise NotImplementedError

    @abstractmethod
    def alerts(self) -> list[dict]:  # the notifications published since the last call
        raise NotImplementedError

    @abstractmethod
    def chunk_bytes(self, n: int) -> Any:  # a context manager: fan out over n bytes
        raise NotImplementedError

    @abstractmethod
    def ctx(self) -> Any:  # the operator's view: the registry, the jobs table
        raise NotImplementedError

    def job(self, name: str) -> dict:
        """The scoring job's record, as `mlops-kit jobs` lists it."""
        from mlops_kit.core.scoring.records import ScoringJobs

        ctx = self.ctx()
        [job] = [j for j in ScoringJobs(ctx.table, ctx.clock).all("churn") if j["name"] == name]
        return job

    @abstractmethod
    def train(self) -> None:  # deliver the one training job to the train function
        raise NotImplementedError

    def upload(self, key: str, body: bytes) -> None:
        self.put(key, body)

    def run(self, *, twice: bool = False, max_attempts: int = 5) -> dict[str, int]:
        """Deliver the validate queue until it is empty (each message twice with `twice`);
        a failed delivery comes back with the next attempt number."""
        seen = {"delivered": 0, "failed": 0}
        attempts: dict[str, int] = {}
        while bodies := self._pending():
            for body in bodies * (2 if twice else 1):
                attempts[body] = attempts.get(body, 0) + 1
                assert attempts[body] <= max_attempts * (2 if twice else 1), body
                if self._deliver(body, attempts[body]):
                    seen["delivered"] += 1
                else:
                    seen["failed"] += 1
                    self._requeue(body)
        return seen

    @abstractmethod
    def _requeue(self, body: str) -> None:
        raise NotImplementedError

    def manifest(self, name: str) -> dict:
        return json.loads(self.get(layout.predictions_manifest_key("churn", name)))

    def parquet(self, key: str) -> list[dict]:
        return pq.read_table(io.BytesIO(self.get(key))).to_pylist()


class Aws(Cloud):
    name = "aws"

    def __init__(self, w: Any) -> None:
        self.w, self.res = w, w.res
        self.s3, self.sqs = w.client("s3"), w.client("sqs")
        sns = w.client("sns")
        self.tap = self.sqs.create_queue(QueueName="alerts-tap")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.tap, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=self.res.topic_arn, Protocol="sqs", Endpoint=arn[
            "Attributes"]["QueueArn"], Attributes={"RawMessageDelivery": "true"})
        self.url = self.res.queue_urls["validate"]
        self._retry: list[str] = []

    def _bucket(self, key: str) -> str:
        return self.res.artifact_bucket if key.startswith(("captures/", "reports/", "models/")) \
            else self.res.data_bucket

    def put(self, key: str, body: bytes) -> None:
        self.w.put(key, body)  # moto sends the S3 notification to the validate queue

    def get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self._bucket(key), Key=key)["Body"].read()

    def exists(self, key: str) -> bool:
        return "Contents" in self.s3.list_objects_v2(Bucket=self._bucket(key), Prefix=key)

    def _drain(self, url: str) -> list[dict]:
        out = []
        while msgs := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                               AttributeNames=["All"]).get("Messages", []):
            out += msgs
            for m in msgs:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return out

    def _pending(self) -> list[str]:
        out, self._retry = self._retry + [m["Body"] for m in self._drain(self.url)], []
        return out

    def _requeue(self, body: str) -> None:
        self._retry.append(body)

    def _deliver(self, body: str, attempt: int) -> bool:
        record = {"messageId": f"m{abs(hash(body))}-{attempt}", "receiptHandle": "r",
                  "body": body, "attributes": {"ApproximateReceiveCount": str(attempt)},
                  "eventSource": "aws:sqs", "awsRegion": self.res.region,
                  "eventSourceARN": self.res.queue_arns["validate"]}
        out = self.w.fns["validate"].handler({"Records": [record]}, None)
        return out == {"batchItemFailures": []}

    def alerts(self) -> list[dict]:
        return [json.loads(m["Body"]) for m in self._drain(self.tap)]

    def train(self) -> None:
        pump = self.w.pumps["train"]  # the Lambda SQS event source, under train's role
        assert pump.drain() == 1 and pump.failed == 0

    @contextmanager
    def chunk_bytes(self, n: int) -> Iterator[None]:
        wiring = sys.modules["_wiring"]  # the functions' cached backend, rebuilt from env
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MLOPSKIT_SCORING_CHUNK_BYTES", str(n))
            wiring.reset()
            try:
                yield
            finally:
                mp.undo()
                wiring.reset()

    def ctx(self) -> Any:
        return self.w.backend.ctx


class Azure(Cloud):
    name = "azure"

    def __init__(self, loaded: Any) -> None:
        self.app, self.names, self.adapters = loaded
        self.store, self.queue = self.adapters.store, self.adapters.validate_queue
        self._grid: list[str] = []
        self._seen = len(self.adapters.notifier.messages())

    def _fn(self, name: str) -> Callable:
        return self.app.functions[name].get_user_function()

    def put(self, key: str, body: bytes) -> None:
        self.store.put(key, body)

    def upload(self, key: str, body: bytes) -> None:
        """The blob, then the Event Grid BlobCreated message its subscription queues."""
        self.put(key, body)
        self._grid.append(grid_message(self.names, key).get_body().decode())

    def get(self, key: str) -> bytes:
        return self.store.get(key)

    def exists(self, key: str) -> bool:
        return self.store.exists(key)

    def _pending(self) -> list[str]:
        out, self._grid = self._grid, []
        while msgs := self.queue.receive(10):
            for m in msgs:
                out.append(m.body if isinstance(m.body, str) else json.dumps(m.body))
                self.queue.ack(m)
        return out

    def _requeue(self, body: str) -> None:
        self._grid.append(body)

    def _deliver(self, body: str, attempt: int) -> bool:
        try:
            self._fn("validate")(message(body.encode(), dequeue_count=attempt))
        except Exception:  # noqa: BLE001 - the host retries the message
            return False
        return True

    def train(self) -> None:
        [job] = self.adapters.train_queue.receive(1)
        self.adapters.train_queue.ack(job)
        assert self._fn("train")(message(job.body)) is None

    def alerts(self) -> list[dict]:
        msgs = [m["message"] for m in self.adapters.notifier.messages()]
        out, self._seen = msgs[self._seen:], len(msgs)
        return out

    @contextmanager
    def chunk_bytes(self, n: int) -> Iterator[None]:
        ctx = self.app.module.runtime.backend().ctx
        old, ctx.scoring_chunk_bytes = ctx.scoring_chunk_bytes, n
        try:
            yield
        finally:
            ctx.scoring_chunk_bytes = old

    def ctx(self) -> Any:
        return self.app.module.runtime.backend().ctx


def _train_twice(cloud: Cloud) -> None:
    """Two versions of churn through validate and train, so that a pin can name the one
    that is not the champion."""
    cloud.put("specs/churn.yaml", yaml.safe_dump(FAST_SPEC).encode())
    for i, seed in enumerate((7, 8)):
        cloud.upload(f"datasets/churn/train-{i}.csv", churn_csv(600, seed=seed))
        cloud.run()
        cloud.train()
    cloud.alerts()


@pytest.fixture(scope="module", params=["aws", "azure"])
def cloud(request) -> Iterator[Cloud]:
    if request.param == "aws":
        from tests.moto_support import aws_world

        with aws_world() as w:
            c: Cloud = Aws(w)
            _train_twice(c)
            yield c
    else:
        c = Azure(request.getfixturevalue("app"))  # the app on Azurite (test_azure_app)
        _train_twice(c)
        yield c



JUNK = b"\x00\x01 not a table"


def _bad_rows(body: bytes, rows: list[int]) -> bytes:
    lines = body.split(b"\n")
    for i in rows:  # tenure_months is not a number (row i: line i + 1, after the header)
        lines[i + 1] = lines[i + 1].replace(b",", b",x", 1)
    return b"\n".join(lines)


def _accounted(cloud: Cloud, name: str, rows: int) -> dict:
    m = cloud.manifest(name)
    assert m["rows_in"] == rows == m["rows_scored"] + m["rows_rejected"], m
    parts = [r for k in m["parts"] for r in cloud.parquet(k)]
    assert len(parts) == m["rows_scored"]
    assert {r["version"] for r in parts} == {m["version"]}
    return m


def test_a_good_file_is_scored_with_the_champion(cloud):
    cloud.upload("scoring/churn/good.csv", churn_csv(300, seed=9))
    cloud.run()
    m = _accounted(cloud, "good", 300)
    champion = cloud.ctx().registry.champion_version("churn")
    assert m["rows_rejected"] == 0 and m["version"] == champion and \
        m["chosen_by"] == "champion"
    [note] = [a for a in cloud.alerts() if a.get("key") == "scoring/churn/good.csv"]
    assert note["event"] == "scored" and note["version"] == champion, note


def test_bad_rows_are_rejected_with_rule_and_column_and_the_rest_scored(cloud):
    cloud.upload("scoring/churn/some bad.csv", _bad_rows(churn_csv(400, seed=10),
                                                         [3, 150, 399]))
    cloud.run()
    m = _accounted(cloud, "some bad", 400)
    assert m["rows_rejected"] == 3
    rejects = cloud.parquet(m["rejects"])
    assert sorted(r["row"] for r in rejects) == [3, 150, 399]
    assert all(r["column"] == "tenure_months" and "number" in r["error"] for r in rejects)


def test_an_unreadable_file_is_quarantined_kept_and_the_job_fails_with_one_notice(cloud):
    key = "scoring/churn/junk.parquet"
    cloud.upload(key, JUNK)
    cloud.run()
    assert cloud.get(key) == JUNK  # the original stays
    qkey = layout.quarantine_key("churn", "scoring-junk.parquet")
    assert cloud.get(qkey) == JUNK
    assert "not a readable Parquet file" in json.loads(cloud.get(qkey + ".report.json"))[
        "reason"]
    assert not cloud.exists(layout.predictions_manifest_key("churn", "junk"))
    assert cloud.job("junk")["status"] == "quarantined"  # final
    [note] = [a for a in cloud.alerts() if a.get("key") == key]
    assert note["event"] == "quarantined" and note["quarantine_key"] == qkey


def test_a_redelivered_notification_of_an_unreadable_file_announces_it_once(cloud):
    key = "scoring/churn/junk twice.parquet"
    cloud.upload(key, JUNK)
    cloud.run(twice=True)  # the upload's notification delivered twice (at-least-once)
    assert cloud.job("junk twice")["status"] == "quarantined"
    notes = [a for a in cloud.alerts() if a.get("key") == key]
    assert [n["event"] for n in notes] == ["quarantined"], notes


def test_an_unreadable_chunked_file_is_quarantined_once_under_redelivery(cloud):
    """Fanned out, a late chunk finds the file unreadable (a line of 40 fields): the whole
    job ends quarantined, announced once, however often the chunks come."""
    key = "scoring/churn/junk big.csv"
    lines = churn_csv(1200, seed=16).split(b"\n")
    lines[1100] = b",".join([b"1"] * 40)
    body = b"\n".join(lines)
    with cloud.chunk_bytes(25_000):
        cloud.upload(key, body)
        cloud.run(twice=True)
    assert cloud.get(key) == body
    assert cloud.exists(layout.quarantine_key("churn", "scoring-junk big.csv"))
    job = cloud.job("junk big")
    assert job["status"] == "quarantined" and job["chunked"] is True, job
    notes = [a for a in cloud.alerts() if a.get("key") == key]
    assert [n["event"] for n in notes] == ["quarantined"], notes


def test_redelivered_chunks_are_counted_once_and_the_manifest_written_once(cloud):
    body = _bad_rows(churn_csv(1200, seed=12), [5, 1100])
    with cloud.chunk_bytes(25_000):
        cloud.upload("scoring/churn/big.csv", body)
        seen = cloud.run(twice=True)  # every message, the upload's and each chunk's, twice
    m = _accounted(cloud, "big", 1200)
    job = cloud.job("big")
    assert job["status"] == "scored" and job["done"] == job["total"] == len(m["chunks"])
    assert m["chunked"] is True and len(m["chunks"]) >= 3 and m["rows_rejected"] == 2
    assert seen["failed"] == 0 and seen["delivered"] == 2 * (1 + len(m["chunks"]))
    assert sum(c["rows_in"] for c in m["chunks"]) == 1200
    parts = [r for k in m["parts"] for r in cloud.parquet(k)]
    rows = sorted((r["chunk"], r["row"]) for r in parts)
    assert len(set(rows)) == len(rows) == 1198  # no row twice
    notes = [a for a in cloud.alerts() if a.get("key") == "scoring/churn/big.csv"]
    assert [n["event"] for n in notes] == ["scored"], notes  # once, not once per delivery


def test_a_pinned_version_scores_with_that_version(cloud):
    champion = cloud.ctx().registry.champion_version("churn")
    pinned = 1 if champion != 1 else 2  # the version that is not the champion
    cloud.put("scoring/churn/pinned.json", json.dumps({"version": pinned}).encode())
    cloud.upload("scoring/churn/pinned.csv", churn_csv(200, seed=13))
    cloud.run()
    m = _accounted(cloud, "pinned", 200)
    assert m["version"] == pinned != champion and m["chosen_by"] == f"version {pinned}"
    # the versions really differ: the champion scores the same rows otherwise
    cloud.upload("scoring/churn/unpinned.csv", churn_csv(200, seed=13))
    cloud.run()
    assert _accounted(cloud, "unpinned", 200)["version"] == champion


def test_a_chunk_that_fails_transiently_is_retried_and_completes_the_job(cloud, monkeypatch):
    """The pattern of tests/unit/scoring/test_fan_out.py: onnxruntime fails once (a retryable
    ConnectionError) in the first chunk scored; that message fails, comes back, and its retry
    completes the job."""
    from mlops_kit.core.serving.predictor import Predictor

    real, failed = Predictor.run_arrays, list[int]()

    def flaky(self, feed):
        if not failed:
            failed.append(len(next(iter(feed.values()))))
            raise ConnectionError("a transient fault in the scoring thread")
        return real(self, feed)

    monkeypatch.setattr(Predictor, "run_arrays", flaky)
    with cloud.chunk_bytes(25_000):
        cloud.upload("scoring/churn/flaky.csv", churn_csv(1000, seed=14))
        seen = cloud.run()
    assert failed and seen["failed"] == 1, seen
    m = _accounted(cloud, "flaky", 1000)
    assert m["chunked"] is True and m["rows_scored"] == 1000
    notes = [a for a in cloud.alerts() if a.get("key") == "scoring/churn/flaky.csv"]
    assert [n["event"] for n in notes] == ["scored"], notes  # the failed attempt: no notice
    assert cloud.job("flaky")["status"] == "scored"
