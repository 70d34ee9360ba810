"""Large datasets train on AWS Batch, under moto (Batch without Docker, EventBridge -> SQS):
routing by size, one job and one version per run however often the train message comes,
the `python -m mlops_kit.train_job` entry point doing the real training in-process against
moto S3 + DynamoDB, and a failed job settling its version `failed` with a notification."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

SMALL, LARGE = "datasets/churn/small.csv", "datasets/churn/large.csv"


@pytest.fixture(scope="module")
def world():
    """The deployment with AWS Batch under moto, IAM enforced: each function (and the batch
    job) holds exactly the policy iam.iam_policy renders for its role."""
    from mlops_kit.core.synthetic import CHURN_SPEC, churn_csv
    from mlops_kit.topology import default_topology
    from tests.moto_support import aws_world

    spec = {**CHURN_SPEC, "estimator": {"kind": "logistic_regression", "params": {}}}
    # the routing threshold lowered: 1500 rows is "large" here, 600 is not
    with aws_world(spec=spec, topology=default_topology(batch=True),
                   extra_env={"MLOPSKIT_TRAIN_MAX_FUNCTION_ROWS": "1000"}) as w:
        sqs, sns = w.client("sqs"), w.client("sns")
        tap = sqs.create_queue(QueueName="alerts-tap")["QueueUrl"]
        tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=w.res.topic_arn, Protocol="sqs", Endpoint=tap_arn,
                      Attributes={"RawMessageDelivery": "true"})
        yield {"w": w, "res": w.res, "s3": w.client("s3"), "sqs": sqs,
               "batch": w.client("batch"), "events": w.client("events"), "pumps": w.pumps,
               "tap": tap, "csv": churn_csv}


def _as_batch_job(world, env):
    """`python -m mlops_kit.train_job` as the Batch container runs it: its environment, and
    the job role's keys (IAM enforced)."""
    from mlops_kit import train_job
    from mlops_kit.adapters.aws import acting_as

    with acting_as(world["res"].identities.get("train-large")):
        return train_job.main(env)


def _upload(w, key, rows, seed):
    w["s3"].put_object(Bucket=w["res"].data_bucket, Key=key, Body=w["csv"](rows, seed=seed))
    assert w["pumps"]["validate"].drain() >= 1


def _train_messages(w):
    """Receive (and keep visible for redelivery) what validation put on the train queue."""
    msgs = w["sqs"].receive_message(QueueUrl=w["res"].queue_urls["train"],
                                    MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    return [json.loads(m["Body"]) for m in msgs]


def _jobs(w, name=None):
    filters = [{"name": "JOB_NAME", "values": [name]}] if name else [
        {"name": "JOB_NAME", "values": ["train-*"]}]
    return w["batch"].list_jobs(jobQueue=w["res"].batch_job_queue,
                                filters=filters)["jobSummaryList"]


def _registry():
    from mlops_kit.bootstrap import build_backend
    from mlops_kit.settings import Settings

    return build_backend(Settings()).ctx.registry  # the operator's view


def _alerts(w):
    out = []
    while msgs := w["sqs"].receive_message(QueueUrl=w["tap"], MaxNumberOfMessages=10).get(
            "Messages", []):
        out += [json.loads(m["Body"]) for m in msgs]
        for m in msgs:
            w["sqs"].delete_message(QueueUrl=w["tap"], ReceiptHandle=m["ReceiptHandle"])
    return out


def _state_change(w, job_id):
    """What Batch puts on EventBridge when the job ends: the job as describe_jobs shows it.
    The rule (pattern from the topology) routes it to the jobs queue."""
    from mlops_kit.emulate.batch import state_change_event

    job = w["batch"].describe_jobs(jobs=[job_id])["jobs"][0]
    event = state_change_event(job, queue_arn=job["jobQueue"], region=w["res"].region)
    out = w["events"].put_events(Entries=[{
        "Source": event["source"], "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"], default=str)}])
    assert out["FailedEntryCount"] == 0
    return job


def test_small_dataset_trains_in_the_function(world):
    _upload(world, SMALL, 600, seed=1)
    assert world["pumps"]["train"].drain() == 1
    assert _jobs(world) == []
    [v] = _registry().list_versions("churn")
    assert v["status"] == "registered" and "engine" not in v["lineage"]
    report = json.loads(world["s3"].get_object(Bucket=world["res"].artifact_bucket,
                                               Key=v["lineage"]["validation_report"])["Body"].read())
    assert report["size"]["rows"] == 600 and report["size"]["estimated_peak_mb"] > 0
    assert report["size"]["bytes"] == world["s3"].head_object(
        Bucket=world["res"].data_bucket, Key=SMALL)["ContentLength"]


def test_large_dataset_goes_to_batch_once_however_often_the_message_comes(world):
    _upload(world, LARGE, 1500, seed=2)
    [message] = _train_messages(world)
    assert message["size"]["rows"] == 1500
    world["large_message"] = message
    # the message is delivered three times (at-least-once): one job, one version
    for _ in range(3):
        world["sqs"].send_message(QueueUrl=world["res"].queue_urls["train"],
                                  MessageBody=json.dumps(message))
    assert world["pumps"]["train"].drain() == 4
    [job] = _jobs(world)
    registry = _registry()
    versions = registry.list_versions("churn")
    assert [v["status"] for v in versions] == ["registered", "pending"]
    pending = versions[-1]
    assert pending["lineage"]["engine"] == "batch"

    detail = world["batch"].describe_jobs(jobs=[job["jobId"]])["jobs"][0]
    env = {e["name"]: e["value"] for e in detail["container"]["environment"]}
    assert env["MLOPSKIT_DATASET_KEY"] == LARGE
    assert env["MLOPSKIT_RUN_ID"] == pending["run_key"]
    assert env["MLOPSKIT_VERSION"] == str(pending["version"])
    assert detail["jobName"].startswith("train-churn-") and len(detail["jobName"]) <= 128
    assert detail["timeout"]["attemptDurationSeconds"] == 4 * 3600

    # the Batch container: the same use case, the same reservation, real training
    assert _as_batch_job(world, env) == 0
    record = registry.get_version("churn", pending["version"])
    assert record["status"] == "registered" and record["metrics"]["roc_auc"] > 0.6
    assert world["s3"].head_object(Bucket=world["res"].artifact_bucket,
                                   Key=record["artifact_key"])["ContentLength"] > 0
    # a retried attempt (or a second job) registers nothing twice
    assert _as_batch_job(world, env) == 0
    assert [v["status"] for v in registry.list_versions("churn")] == ["registered", "registered"]

    # Batch reports SUCCEEDED: the version is already complete, nothing to settle or announce
    _alerts(world)
    _state_change(world, job["jobId"])
    assert world["pumps"]["jobs"].drain() == 1
    assert registry.get_version("churn", pending["version"])["status"] == "registered"
    assert not [a for a in _alerts(world) if a.get("event") == "trained" and a.get("status") == "failed"]


def test_a_submit_after_a_lost_marker_finds_the_job_by_name(world):
    """The train function died after submit_job, before it recorded the job: the redelivered
    message finds the job by its name (list_jobs) instead of starting a second."""
    from mlops_kit.adapters.aws import DynamoTable

    res = world["res"]
    table = DynamoTable(res.table, lambda: world["w"].client("dynamodb"))
    _upload(world, "datasets/churn/again.csv", 1200, seed=4)
    [message] = _train_messages(world)
    assert world["pumps"]["train"].drain() == 1
    [marker] = [m for m in table.query("TRAINJOB#churn")
                if m["version"] == _registry().list_versions("churn")[-1]["version"]]
    table.delete(marker["pk"], marker["sk"])  # as if the function died right after submit
    world["sqs"].send_message(QueueUrl=res.queue_urls["train"], MessageBody=json.dumps(message))
    assert world["pumps"]["train"].drain() == 1
    assert len(_jobs(world, marker["job_name"])) == 1
    assert table.get(marker["pk"], marker["sk"])["job_id"] == marker["job_id"]


def test_a_failed_job_marks_its_version_failed_and_notifies(world, monkeypatch):
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # moto fails the job at once
    _alerts(world)
    _upload(world, "datasets/churn/larger.csv", 1800, seed=3)
    assert world["pumps"]["train"].drain() == 1
    registry = _registry()
    version = registry.list_versions("churn")[-1]
    assert version["status"] == "pending"
    [job] = [j for j in _jobs(world) if j["status"] == "FAILED"]
    _state_change(world, job["jobId"])
    assert world["pumps"]["jobs"].drain() == 1
    record = registry.get_version("churn", version["version"])
    assert record["status"] == "failed"
    assert job["jobName"] in record["reasons"][0] and "failed on batch" in record["reasons"][0]
    [alert] = [a for a in _alerts(world) if a.get("event") == "trained" and a.get("status") == "failed"]
    assert alert["version"] == version["version"] and alert["reasons"] == record["reasons"]
    # the event again (EventBridge is at-least-once): settled, no second notification
    _state_change(world, job["jobId"])
    assert world["pumps"]["jobs"].drain() == 1
    assert not _alerts(world)
    # a failed version is never served
    from mlops_kit.errors import PromotionRefused

    with pytest.raises(PromotionRefused):
        registry.promote("churn", version["version"], actor="test", reason="try")
