"""`mlops-kit emulate --enforce-iam` runs "AWS Batch" jobs as separate processes against the
emulated S3 and DynamoDB, under the batch job role's policy, and their final states travel as
Batch Job State Change events through the EventBridge rule to the `jobs` queue and function
(under its own role), as on AWS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1", "MLOPSKIT_TRAIN_MAX_FUNCTION_ROWS": "1000",
       # any scoring job is over this function-time budget: it goes to "AWS Batch"
       "MLOPSKIT_SCORING_BATCH_SECONDS": "0.001", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    ws = tmp_path_factory.mktemp("emulate-batch")
    log = ws / "stderr.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([str(BIN / "mlops-kit"), "--workspace", str(ws), "emulate",
                                 "--retry-after", "1", "--enforce-iam"], cwd=ROOT, env=ENV,
                                stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        line = proc.stdout.readline()
        assert line, log.read_text()
        info = json.loads(line)
        yield info, ws
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


@pytest.fixture(scope="module")
def aws(emulator):
    import boto3
    import yaml

    from mlops_kit.core.synthetic import CHURN_SPEC

    info, _ = emulator
    keys = info["credentials"]  # IAM enforced: the operator's (admin) keys
    session = boto3.session.Session(aws_access_key_id=keys["aws_access_key_id"],
                                    aws_secret_access_key=keys["aws_secret_access_key"],
                                    region_name="us-east-1")
    c = {s: session.client(s, endpoint_url=info["endpoint_url"]) for s in ("s3", "dynamodb")}
    c["s3"].put_object(Bucket=info["data_bucket"], Key="specs/churn.yaml", Body=yaml.safe_dump(
        {**CHURN_SPEC, "estimator": {"kind": "logistic_regression", "params": {}}}).encode())
    return c


def versions(info, aws):
    items = aws["dynamodb"].query(
        TableName=info["table"], KeyConditionExpression="pk = :p AND begins_with(sk, :v)",
        ExpressionAttributeValues={":p": {"S": "MODEL#churn"}, ":v": {"S": "VERSION#"}})["Items"]
    from boto3.dynamodb.types import TypeDeserializer

    d = TypeDeserializer()
    return [{k: d.deserialize(v) for k, v in item.items()} for item in items]


def wait_for(predicate, timeout=180, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_large_upload_trains_as_a_batch_job_process(emulator, aws):
    from mlops_kit.core.synthetic import churn_csv

    info, ws = emulator
    assert info["batch_job_queue"] and info["batch_job_definition"]
    aws["s3"].put_object(Bucket=info["data_bucket"], Key="datasets/churn/big.csv",
                         Body=churn_csv(1500, seed=21))
    [v] = wait_for(lambda: [x for x in versions(info, aws) if x["status"] == "registered"],
                   what="the batch-trained version")
    assert v["lineage"]["engine"] == "process" and v["lineage"]["rows"] == 1500
    [state] = wait_for(lambda: [s for s in (json.loads(p.read_text())
                                            for p in (ws / "jobs").glob("*/state.json"))
                                if s["status"] == "SUCCEEDED"], what="the job's end")
    assert state["env"]["MLOPSKIT_VERSION"] == "1" and state["pid"] != os.getpid()


def test_a_killed_job_is_settled_failed_through_the_event_rule(emulator, aws):
    """The trainer is killed (as by the OOM killer): it cannot report anything itself; the
    version turns `failed` only through the state change event and the jobs function."""
    from mlops_kit.core.synthetic import churn_csv

    info, ws = emulator
    aws["s3"].put_object(Bucket=info["data_bucket"], Key="datasets/churn/bigger.csv",
                         Body=churn_csv(1600, seed=22))

    def running_pid():
        for p in (ws / "jobs").glob("*/state.json"):
            s = json.loads(p.read_text())
            if s["env"]["MLOPSKIT_VERSION"] == "2" and s["status"] == "RUNNING" and s.get("pid"):
                return s["pid"]
        return None

    os.kill(wait_for(running_pid, what="the second job running"), signal.SIGKILL)
    [v] = wait_for(lambda: [x for x in versions(info, aws)
                            if x["version"] == 2 and x["status"] == "failed"],
                   what="version 2 failed")
    assert "SIGKILL" in v["reasons"][0] and "failed on batch" in v["reasons"][0]


def test_a_scoring_job_over_the_budget_runs_as_a_score_large_process(emulator, aws):
    """Issue 27: validate submits the scoring job to the scoring definition; emulate runs it in
    a separate process under the score-large role's keys (its own engine and folder), which
    scores the whole file and writes the manifest; its end reaches the jobs function."""
    from mlops_kit.core.synthetic import churn_csv

    info, ws = emulator
    wait_for(lambda: [x for x in versions(info, aws) if x["status"] == "registered"],
             what="a served version")
    aws["s3"].put_object(Bucket=info["data_bucket"], Key="scoring/churn/nightly.csv",
                         Body=churn_csv(800, seed=23))

    def manifest():
        try:
            body = aws["s3"].get_object(Bucket=info["data_bucket"],
                                        Key="predictions/churn/nightly/_manifest.json")["Body"]
        except aws["s3"].exceptions.NoSuchKey:
            return None
        return json.loads(body.read())

    # IAM is enforced: under training's job role the process could not read scoring/
    m = wait_for(manifest, what="the scoring manifest")
    assert m["engine"] == "batch" and m["rows_scored"] == m["rows_in"] == 800
    [state] = wait_for(lambda: [s for s in (json.loads(p.read_text()) for p in
                                            (ws / "jobs-score-large").glob("*/state.json"))
                                if s["status"] == "SUCCEEDED"], what="the scoring job's end")
    assert state["env"]["MLOPSKIT_JOB_KIND"] == "score" and state["pid"] != os.getpid()
    assert not [p for p in (ws / "jobs").glob("*/state.json")
                if json.loads(p.read_text())["env"].get("MLOPSKIT_JOB_KIND") == "score"]
