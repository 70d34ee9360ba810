"""`mlops-kit emulate --enforce-iam` driven by unmodified clients as subprocesses: the AWS CLI
uploads a spec and a dataset, curl calls the inference URL. moto checks every request, each
function runs under its role's rendered policy, and the clients use the operator keys the
emulator prints. Without the flag (the default) the same emulator takes any keys: an in-process
check below."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.iam_enforced]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": ""}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    log = tmp_path_factory.mktemp("emulate") / "stderr.log"
    with open(log, "w") as err:  # a file, not a pipe: nobody reads it while the test runs
        proc = subprocess.Popen([str(BIN / "mlops-kit"), "emulate", "--monitor-every", "2",
                                 "--enforce-iam"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                                stderr=err, text=True)
    try:
        line = proc.stdout.readline()  # the one JSON line, printed when everything is up
        assert line, log.read_text()
        info = json.loads(line)
        assert info["enforce_iam"] is True
        keys = info["credentials"]  # the operator's: the dummy keys are refused
        info["env"] = {**ENV, "AWS_ACCESS_KEY_ID": keys["aws_access_key_id"],
                       "AWS_SECRET_ACCESS_KEY": keys["aws_secret_access_key"]}
        yield proc, info
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def aws(info, *args):
    out = subprocess.run([str(BIN / "aws"), "--endpoint-url", info["endpoint_url"], *args],
                         env=info["env"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def boto(info, service, env=None):
    import boto3  # polling through boto3: the AWS CLI costs a second per call

    env = env or info["env"]
    return boto3.client(service, endpoint_url=info["endpoint_url"], region_name=info["region"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def curl(url, body):
    out = subprocess.run(["curl", "-sS", "-X", "POST", "-H", "content-type: application/json",
                          "-d", json.dumps(body), "-w", "\n%{http_code}", url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text, _, code = out.stdout.rpartition("\n")
    return int(code), json.loads(text)


def test_emulate_aws_cli_upload_then_curl_predict(emulator, tmp_path):
    proc, info = emulator
    assert {"endpoint_url", "region", "data_bucket", "artifact_bucket", "validate_queue_url",
            "train_queue_url", "table", "topic_arn", "inference_url"} <= set(info)
    dataset = tmp_path / "churn small.csv"
    shutil.copy(ROOT / "examples" / "churn-small.csv", dataset)
    aws(info, "s3", "cp", str(ROOT / "examples" / "churn.yaml"),
        f"s3://{info['data_bucket']}/specs/churn.yaml")
    aws(info, "s3", "cp", str(dataset), f"s3://{info['data_bucket']}/datasets/churn/{dataset.name}")
    ddb = boto(info, "dynamodb")
    key = {"pk": {"S": "MODEL#churn"}, "sk": {"S": "ALIAS#champion"}}
    deadline = time.monotonic() + 60
    item = {}
    while time.monotonic() < deadline and "Item" not in item:
        time.sleep(0.3)
        item = ddb.get_item(TableName=info["table"], Key=key)
    assert item["Item"]["version"]["N"] == "1", "no champion within 60 s"
    assert "models/churn/000001/model.onnx" in aws(
        info, "s3", "ls", "--recursive", f"s3://{info['artifact_bucket']}/models/churn/")

    record = {"tenure_months": 3, "monthly_charges": 99.5, "support_calls": 4, "age": 30,
              "plan": "basic", "region": "north", "payment": "card"}
    status, body = curl(f"{info['inference_url']}/v1/models/churn:predict",
                        {"instances": [record, dict(record, tenure_months=120)]})
    assert status == 200 and len(body["predictions"]) == 2 and body["version"] == 1
    assert len(body["probabilities"][0]) == 2
    status, body = curl(f"{info['inference_url']}/v1/models/churn:predict",
                        {"instances": [dict(record, age="old")]})
    assert status == 400 and body["field"] == "age"

    # the schedule runs the monitor every 2 s: a report appears in the artifact bucket
    s3 = boto(info, "s3")
    deadline = time.monotonic() + 30
    reports = []
    while time.monotonic() < deadline and not reports:
        time.sleep(0.5)
        reports = s3.list_objects_v2(Bucket=info["artifact_bucket"],
                                     Prefix="reports/churn/monitoring/").get("Contents", [])
    assert reports, "no monitoring report within 30 s"
    assert proc.poll() is None  # still serving


def test_enforced_emulator_refuses_unknown_keys_and_gives_each_function_its_policy(emulator):
    """With --enforce-iam the usual dummy keys are refused, and each function's IAM user holds
    exactly the policy iam.iam_policy renders for these resources (+ the moto-only
    statements of mlops_kit.emulate.iam)."""
    from botocore.exceptions import ClientError

    from mlops_kit.emulate import moto_policy
    from mlops_kit.iam import PolicyArns, iam_policy
    from mlops_kit.topology import default_topology

    proc, info = emulator
    with pytest.raises(ClientError) as refused:
        boto(info, "s3", ENV).list_buckets()
    assert refused.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    iam, sqs = boto(info, "iam"), boto(info, "sqs")
    topo = default_topology(batch=True)  # emulate includes "AWS Batch" (training-engines.md)
    queue_arn = {q: sqs.get_queue_attributes(QueueUrl=info[f"{q.replace('-', '_')}_url" if
                                                           q.endswith("-dlq") else
                                                           f"{q}_queue_url"],
                                             AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
                 for q in ("validate", "train", "jobs")}
    definitions = {job: f"arn:aws:batch:us-east-1:123456789012:job-definition/{name}"
                   for job, name in info["batch_definitions"].items()}
    assert set(definitions) == {"train-large", "score-large"}
    arns = PolicyArns(buckets={"data": f"arn:aws:s3:::{info['data_bucket']}",
                               "artifacts": f"arn:aws:s3:::{info['artifact_bucket']}"},
                      table=boto(info, "dynamodb").describe_table(
                          TableName=info["table"])["Table"]["TableArn"],
                      queues=queue_arn, topic=info["topic_arn"],
                      batch_jobs={job: (info["batch_job_queue"], d)
                                  for job, d in definitions.items()})
    for fn in (*topo.functions, *topo.batch_jobs):
        user = f"mlops-kit-{fn.name}"
        doc = iam.get_user_policy(UserName=user, PolicyName=f"{user}-policy")["PolicyDocument"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        assert doc == moto_policy(iam_policy(topo, fn.name, arns))
    assert proc.poll() is None


def test_without_the_flag_any_keys_do_and_no_credentials_are_printed():
    """The default emulation (in-process here: the same provisioning) checks no keys."""
    import boto3

    from mlops_kit.emulate import in_process

    with in_process(prefix="open") as res:
        info = res.summary()
        assert "credentials" not in info and "enforce_iam" not in info and not res.identities
        s3 = boto3.client("s3", region_name=res.region, aws_access_key_id="anything",
                          aws_secret_access_key="goes")
        assert {b["Name"] for b in s3.list_buckets()["Buckets"]} == {"open-data", "open-artifacts"}
