"""`mlops-kit emulate` driven by unmodified clients as subprocesses: the AWS CLI uploads a spec
and a dataset, curl calls the inference URL."""

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

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": ""}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    log = tmp_path_factory.mktemp("emulate") / "stderr.log"
    with open(log, "w") as err:  # a file, not a pipe: nobody reads it while the test runs
        proc = subprocess.Popen([str(BIN / "mlops-kit"), "emulate", "--monitor-every", "2"],
                                cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        line = proc.stdout.readline()  # the one JSON line, printed when everything is up
        assert line, log.read_text()
        yield proc, json.loads(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def aws(info, *args):
    out = subprocess.run([str(BIN / "aws"), "--endpoint-url", info["endpoint_url"], *args],
                         env=ENV, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


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
    import boto3  # polling through boto3: the AWS CLI costs a second per call

    ddb = boto3.client("dynamodb", endpoint_url=info["endpoint_url"], region_name=info["region"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")
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
    s3 = boto3.client("s3", endpoint_url=info["endpoint_url"], region_name=info["region"],
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    deadline = time.monotonic() + 30
    reports = []
    while time.monotonic() < deadline and not reports:
        time.sleep(0.5)
        reports = s3.list_objects_v2(Bucket=info["artifact_bucket"],
                                     Prefix="reports/churn/monitoring/").get("Contents", [])
    assert reports, "no monitoring report within 30 s"
    assert proc.poll() is None  # still serving
