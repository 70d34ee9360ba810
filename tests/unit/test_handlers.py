"""The cloud-neutral handler layer on the local backend: the messages the validate queue gets
(Event Grid schema, CloudEvents, our own body), final vs retryable failures, the schedule."""

from __future__ import annotations

import base64
import json

import pytest

from mlops_kit.errors import NotFound, SpecError, TransientError, ValidationError
from mlops_kit.handlers import (
    CreatedObject,
    created_objects,
    is_retryable,
    ncrontab,
    ncrontab_seconds,
    rate_seconds,
    settle,
    train_message,
    validate_message,
)
from tests.support import FAST_SPEC, apply_spec

SUBJECT = "/blobServices/default/containers/data/blobs/datasets/churn/jan 2026 #1.csv"


def grid_event(subject=SUBJECT, kind="Microsoft.Storage.BlobCreated", **data):
    return {"topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/"
                     "storageAccounts/acct", "subject": subject, "eventType": kind, "id": "e1",
            "data": {"api": "PutBlob", "eTag": "0x8DE0A1B2C3D4E5F", "contentLength": 10,
                     "url": "https://acct.blob.core.windows.net/data/datasets/churn/"
                            "jan%202026%20%231.csv", **data},
            "dataVersion": "", "metadataVersion": "1", "eventTime": "2026-01-01T00:00:00Z"}


def test_event_grid_schema_names_the_blob_from_the_subject_not_the_url():
    [obj] = created_objects(json.dumps(grid_event()))
    # the subject carries the name as written; the event's eTag is the service's, not ours
    assert obj == CreatedObject("datasets/churn/jan 2026 #1.csv", None, None, "e1")


def test_cloudevents_schema_and_lists_and_bytes_are_read():
    cloud = {"specversion": "1.0", "type": "Microsoft.Storage.BlobCreated", "id": "c1",
             "source": "/subscriptions/x/...", "subject": SUBJECT.lstrip("/"),
             "data": {"versionId": "2026-01-01T00:00:00.0000000Z"}}
    objs = created_objects(json.dumps([grid_event(), cloud]).encode())
    assert [o.key for o in objs] == ["datasets/churn/jan 2026 #1.csv"] * 2
    assert objs[1].version_id == "2026-01-01T00:00:00.0000000Z"


def test_other_events_and_containers_announce_nothing_our_body_is_read():
    assert created_objects(grid_event(kind="Microsoft.Storage.BlobDeleted")) == []
    assert created_objects(grid_event(), containers={"otherdata"}) == []
    assert created_objects({"key": "labels/churn/l.csv", "etag": "abc"}) == [
        CreatedObject("labels/churn/l.csv", "abc", None)]


def test_an_s3_notification_is_read_by_the_same_shell():
    """AWS's validate function hands its SQS body to the shared shell too (one shell)."""
    body = {"Records": [
        {"eventName": "ObjectCreated:Put", "s3": {"object": {
            "key": "datasets/churn/churn+jan+2026.csv", "eTag": "e1", "versionId": "v1"}}},
        {"eventName": "ObjectRemoved:Delete", "s3": {"object": {"key": "datasets/churn/x.csv"}}},
    ]}
    assert created_objects(json.dumps(body)) == [
        CreatedObject("datasets/churn/churn jan 2026.csv", "e1", "v1")]
    assert created_objects('{"Event": "s3:TestEvent", "Bucket": "b"}') == []


@pytest.mark.parametrize("body, field", [
    ("{not json", "message"), (b"\xff\xfe", "message"), ('"a string"', "message"),
    ('{"Records": [{"eventName": "ObjectCreated:Put", "s3": {}}]}', "message"),
    (json.dumps(grid_event(subject="/blobServices/default/containers/data")), "subject"),
])
def test_unreadable_messages_are_validation_errors(body, field):
    with pytest.raises(ValidationError) as info:
        created_objects(body)
    assert info.value.field == field


def test_retryable_is_transient_infrastructure_only():
    assert is_retryable(TransientError("throttled"))
    assert is_retryable(ConnectionResetError("reset"))
    assert not is_retryable(SpecError("no spec"))
    assert not is_retryable(ValidationError("bad"))
    assert not is_retryable(NotFound("gone"))


def test_a_final_failure_is_an_outcome_and_a_notification(backend):
    out = settle(backend.ctx.notifier, "validate", lambda: (_ for _ in ()).throw(
        SpecError("no spec for model 'churn'", field="model")), model="churn", key="k")
    assert out == {"status": "failed", "final": True, "stage": "validate",
                   "error": "no spec for model 'churn'", "error_type": "SpecError",
                   "error_code": "invalid_spec", "field": "model", "model": "churn", "key": "k"}
    [note] = backend.ctx.notifier.messages()
    assert note["subject"] == "mlops-kit: validate job failed for churn"
    assert note["message"]["event"] == "job_failed" and note["message"]["key"] == "k"


def test_a_retryable_failure_propagates_and_notifies_nothing(backend):
    with pytest.raises(TransientError):
        settle(backend.ctx.notifier, "train", lambda: (_ for _ in ()).throw(
            TransientError("table busy")))
    assert backend.ctx.notifier.messages() == []


def test_validate_message_runs_the_core_per_object(backend):
    from mlops_kit.core.synthetic import broken_churn_csv

    apply_spec(backend, FAST_SPEC)
    backend.ctx.store.put("datasets/churn/jan 2026 #1.csv", broken_churn_csv())
    body = base64.b64decode(base64.b64encode(json.dumps(grid_event()).encode()))
    [out] = validate_message(backend.ctx, body, containers={"data"})
    assert out["status"] == "quarantined"
    assert out["quarantine_key"] == "quarantine/churn/jan 2026 #1.csv"
    # no spec for another model: final, reported, not raised
    backend.ctx.store.put("datasets/nospec/a.csv", b"x\n1\n")
    [failed] = validate_message(backend.ctx, {"key": "datasets/nospec/a.csv"})
    # (issue 12's use case quarantines it with the reason instead: final either way)
    assert failed["status"] in ("failed", "quarantined") and failed["model"] == "nospec"
    # a malformed message is one failed outcome, not an exception
    [bad] = validate_message(backend.ctx, "{nope")
    assert bad["status"] == "failed" and bad["field"] == "message"


def test_train_message_refuses_what_is_not_a_job(backend):
    out = train_message(backend.ctx, json.dumps({"model": "churn"}).encode())
    assert out["status"] == "failed" and "not a training job" in out["error"]
    assert out["model"] == "churn"
    # an experiment's trial message is a job: it reaches the use case (no spec here: final)
    trial = {"type": "trial", "model": "churn", "run": 1, "hash": "h",
             "dataset_key": "datasets/churn/a.csv", "job": {}}
    out = train_message(backend.ctx, json.dumps(trial).encode())
    assert out["status"] == "failed" and "not a training job" not in out["error"]


@pytest.mark.parametrize("rate, cron, seconds", [
    ("rate(1 minute)", "0 * * * * *", 60), ("rate(15 minutes)", "0 */15 * * * *", 900),
    ("rate(1 hour)", "0 0 * * * *", 3600), ("rate(6 hours)", "0 0 */6 * * *", 21600),
    ("rate(60 minutes)", "0 0 * * * *", 3600), ("rate(1 day)", "0 0 0 * * *", 86400),
    ("rate(24 hours)", "0 0 0 * * *", 86400),
])
def test_schedule_renders_as_ncrontab_and_back(rate, cron, seconds):
    assert ncrontab(rate) == cron
    assert ncrontab_seconds(cron) == seconds == rate_seconds(rate)


@pytest.mark.parametrize("rate", ["rate(7 minutes)", "rate(5 hours)", "rate(2 days)",
                                  "rate(0 hours)", "cron(0 * * * ? *)"])
def test_uneven_or_unknown_schedules_are_refused(rate):
    with pytest.raises(ValueError, match="schedule"):
        ncrontab(rate)
