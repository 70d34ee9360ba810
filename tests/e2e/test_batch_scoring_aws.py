"""Batch scoring past what functions can do, on AWS under moto with IAM enforced: a scoring
upload over the function-time budget (lowered through MLOPSKIT_SCORING_BATCH_SECONDS) is
submitted by the validate function (its role may submit the score-large definition only) to
AWS Batch, once however often the upload's notification comes; `python -m mlops_kit.train_job`
(MLOPSKIT_JOB_KIND=score) runs the same score_upload under the score-large job role and writes
the parts and the manifest once; training's role cannot run it; Batch's final state settles
nothing twice."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

KEY, MANIFEST = "scoring/churn/nightly.csv", "predictions/churn/nightly/_manifest.json"


@pytest.fixture(scope="module")
def world():
    from mlops_kit.core.synthetic import CHURN_SPEC, churn_csv
    from mlops_kit.topology import default_topology
    from tests.moto_support import aws_world

    spec = {**CHURN_SPEC, "estimator": {"kind": "logistic_regression", "params": {}}}
    # any scoring job is over this budget: it leaves the functions for Batch
    with aws_world(spec=spec, topology=default_topology(batch=True),
                   extra_env={"MLOPSKIT_SCORING_BATCH_SECONDS": "0.001"}) as w:
        s3, sqs, sns = w.client("s3"), w.client("sqs"), w.client("sns")
        tap = sqs.create_queue(QueueName="alerts-tap")["QueueUrl"]
        sns.subscribe(TopicArn=w.res.topic_arn, Protocol="sqs", Attributes={
            "RawMessageDelivery": "true"}, Endpoint=sqs.get_queue_attributes(
                QueueUrl=tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
        s3.put_object(Bucket=w.res.data_bucket, Key="datasets/churn/small.csv",
                      Body=churn_csv(600, seed=1))
        assert w.pumps["validate"].drain() >= 1 and w.pumps["train"].drain() == 1
        yield {"w": w, "res": w.res, "s3": s3, "batch": w.client("batch"),
               "events": w.client("events"), "pumps": w.pumps, "csv": churn_csv,
               "sqs": sqs, "tap": tap}


def _alerts(world):
    out, sqs = [], world["sqs"]
    while msgs := sqs.receive_message(QueueUrl=world["tap"], MaxNumberOfMessages=10).get(
            "Messages", []):
        out += [json.loads(m["Body"]) for m in msgs]
        for m in msgs:
            sqs.delete_message(QueueUrl=world["tap"], ReceiptHandle=m["ReceiptHandle"])
    return out


def _as(world, job, env):
    """The Batch container's entry point with its environment under `job`'s role keys."""
    from mlops_kit import train_job
    from mlops_kit.adapters.aws import acting_as

    with acting_as(world["res"].identities.get(job)):
        return train_job.main(env)


def _score_jobs(world):
    return world["batch"].list_jobs(jobQueue=world["res"].batch_job_queue, filters=[
        {"name": "JOB_NAME", "values": ["score-*"]}])["jobSummaryList"]


def _bad_rows(body: bytes, every: int) -> bytes:
    lines = body.split(b"\n")
    for i in range(1, len(lines) - 1, every):  # tenure_months is not a number
        lines[i] = lines[i].replace(b",", b",x", 1)
    return b"\n".join(lines)


def test_a_scoring_job_over_the_budget_runs_on_batch_under_its_own_role(world):
    from mlops_kit.bootstrap import build_backend
    from mlops_kit.core.scoring.records import ScoringJobs
    from mlops_kit.emulate.batch import state_change_event
    from mlops_kit.settings import Settings

    res, s3, pumps = world["res"], world["s3"], world["pumps"]
    s3.put_object(Bucket=res.data_bucket, Key=KEY, Body=_bad_rows(world["csv"](2000, seed=11),
                                                                     500))
    assert pumps["validate"].drain() == 1 and pumps["validate"].failed == 0
    [summary] = _score_jobs(world)
    job = world["batch"].describe_jobs(jobs=[summary["jobId"]])["jobs"][0]
    # the scoring job's own definition, on the queue training uses
    assert f"{res.batch_definitions['score-large']}:" in job["jobDefinition"]
    assert job["jobQueue"] == res.batch_job_queue
    env = {e["name"]: e["value"] for e in job["container"]["environment"]}
    assert env["MLOPSKIT_JOB_KIND"] == "score"
    assert json.loads(env["MLOPSKIT_SCORE_JOB"])["key"] == KEY
    # the upload's notification again (S3 is at-least-once): the job it started is found
    note = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": res.data_bucket}, "object": {
                             "key": KEY, "eTag": s3.head_object(Bucket=res.data_bucket,
                                                                Key=KEY)["ETag"].strip('"')}}}]}
    world["w"].client("sqs").send_message(QueueUrl=res.queue_urls["validate"],
                                          MessageBody=json.dumps(note))
    assert pumps["validate"].drain() == 1 and pumps["validate"].failed == 0
    assert len(_score_jobs(world)) == 1

    # training's role holds none of scoring's grants: the same job fails under it (final)
    # (AccessDenied on the upload: a retryable exit, which Batch retries then fails)
    assert _as(world, "train-large", env) == 75
    ctx = build_backend(Settings()).ctx  # the operator's view
    assert ScoringJobs(ctx.table, ctx.clock).all("churn")[0]["status"] == "running"

    # the Batch container under its own role: the same score_upload, parts + manifest once
    assert _as(world, "score-large", env) == 0
    manifest = json.loads(s3.get_object(Bucket=res.data_bucket, Key=MANIFEST)["Body"].read())
    assert manifest["engine"] == "batch" and "budget" in manifest["route"]
    assert manifest["rows_in"] == 2000 and manifest["rows_rejected"] == 4
    assert manifest["rows_scored"] + manifest["rows_rejected"] == manifest["rows_in"]
    scored = sum(pq.read_table(io.BytesIO(s3.get_object(Bucket=res.data_bucket, Key=k)[
        "Body"].read())).num_rows for k in manifest["parts"])
    assert scored == manifest["rows_scored"]
    # a retried attempt writes nothing twice
    etag = s3.head_object(Bucket=res.data_bucket, Key=MANIFEST)["ETag"]
    assert _as(world, "score-large", env) == 0
    assert s3.head_object(Bucket=res.data_bucket, Key=MANIFEST)["ETag"] == etag
    [record] = ScoringJobs(ctx.table, ctx.clock).all("churn")
    assert record["status"] == "scored" and record["engine"] == "batch"

    # Batch reports SUCCEEDED: the job ended itself, nothing settled here
    event = state_change_event(world["batch"].describe_jobs(jobs=[summary["jobId"]])["jobs"][0],
                               queue_arn=res.batch_job_queue, region=res.region)
    assert world["events"].put_events(Entries=[{
        "Source": event["source"], "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"], default=str)}])["FailedEntryCount"] == 0
    assert pumps["jobs"].drain() == 1 and pumps["jobs"].failed == 0
    assert ScoringJobs(ctx.table, ctx.clock).all("churn")[0]["status"] == "scored"
    events = [a["event"] for a in _alerts(world) if a.get("key") == KEY]
    assert events.count("scoring_submitted") == 1 and events.count("scored") == 1
    assert "scoring_failed" not in events


def test_a_failed_scoring_job_is_settled_failed_once_by_the_jobs_function(world, monkeypatch):
    """The container dies without ending the job (killed, out of memory): Batch reports FAILED,
    the rule brings it to the jobs function (under its own role), which marks the job failed
    with Batch's reason and one alert; the event again changes nothing."""
    from mlops_kit.bootstrap import build_backend
    from mlops_kit.core.scoring.records import ScoringJobs
    from mlops_kit.emulate.batch import state_change_event
    from mlops_kit.settings import Settings

    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # moto fails the job at once
    res, pumps = world["res"], world["pumps"]
    _alerts(world)
    world["s3"].put_object(Bucket=res.data_bucket, Key="scoring/churn/dies.csv",
                           Body=world["csv"](500, seed=12))
    assert pumps["validate"].drain() == 1 and pumps["validate"].failed == 0
    [job] = [j for j in _score_jobs(world) if j["status"] == "FAILED"]
    ctx = build_backend(Settings()).ctx
    [record] = [r for r in ScoringJobs(ctx.table, ctx.clock).all("churn")
                if r["key"] == "scoring/churn/dies.csv"]
    assert record["status"] == "running" and record["job_id"] == job["jobId"]
    for _ in range(2):  # EventBridge is at-least-once
        event = state_change_event(world["batch"].describe_jobs(jobs=[job["jobId"]])["jobs"][0],
                                   queue_arn=res.batch_job_queue, region=res.region)
        assert world["events"].put_events(Entries=[{
            "Source": event["source"], "DetailType": event["detail-type"],
            "Detail": json.dumps(event["detail"], default=str)}])["FailedEntryCount"] == 0
        assert pumps["jobs"].drain() == 1 and pumps["jobs"].failed == 0
    [record] = [r for r in ScoringJobs(ctx.table, ctx.clock).all("churn")
                if r["key"] == "scoring/churn/dies.csv"]
    assert record["status"] == "failed" and "failed on batch" in record["reason"]
    assert job["jobName"] in record["reason"]
    failed = [a for a in _alerts(world) if a.get("event") == "scoring_failed"]
    assert len(failed) == 1 and failed[0]["key"] == "scoring/churn/dies.csv"
