"""The whole lifecycle on the AWS code path under moto with IAM enforced: each function runs
under the policy the Pulumi program renders for its role (tests.moto_support.aws_world), so a
call the role does not allow fails here as it would on AWS.

A boto3 put_object with real S3->SQS notification delivery, the handlers driven from SQS the way
the Lambda event source does, predictions through an HTTP API v2 gateway, duplicates,
quarantine with its report and notification, the DLQ, labels -> live metrics, and drift -> a
retrain dataset -> a new version."""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.request

import pytest

from tests.support import FAST_SPEC, feature_records

pytestmark = [pytest.mark.slow, pytest.mark.iam_enforced, pytest.mark.filterwarnings("ignore")]

DATASET = "datasets/churn/churn 2026 q1.csv"  # S3 notifies it URL-encoded (+ for spaces)
SPEC = {**FAST_SPEC, "monitoring": {**FAST_SPEC["monitoring"], "retrain_on_drift": True}}


@pytest.fixture(scope="module")
def flow():
    from mlops_kit.adapters.aws import DynamoTable
    from mlops_kit.core.synthetic import churn_csv
    from tests.moto_support import aws_world

    with aws_world(spec=SPEC) as w:
        sqs, sns = w.sqs, w.client("sns")
        tap = sqs.create_queue(QueueName="alerts-tap")["QueueUrl"]  # the operator's inbox
        tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=w.res.topic_arn, Protocol="sqs", Endpoint=tap_arn,
                      Attributes={"RawMessageDelivery": "true"})
        data = churn_csv(1000, seed=11)
        w.put(DATASET, data)
        validated = w.pumps["validate"].drain()
        trained = w.pumps["train"].drain()
        yield {"w": w, "res": w.res, "s3": w.s3, "sqs": sqs, "pumps": w.pumps, "fns": w.fns,
               "url": w.gateway(), "data": data, "tap": tap, "validated": validated,
               "trained": trained, "table": DynamoTable(w.res.table, lambda: w.client("dynamodb")),
               "served": []}


def _keys(f, bucket, prefix):
    return [o["Key"] for o in f["s3"].list_objects_v2(Bucket=bucket, Prefix=prefix)
            .get("Contents", [])]


def _post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _alerts(f):
    out = []
    while msgs := f["sqs"].receive_message(QueueUrl=f["tap"], MaxNumberOfMessages=10).get(
            "Messages", []):
        out += [json.loads(m["Body"]) for m in msgs]
        for m in msgs:
            f["sqs"].delete_message(QueueUrl=f["tap"], ReceiptHandle=m["ReceiptHandle"])
    return out


def _predict(f, records, batch=40):
    """Predictions through the gateway (serve's role); every answer is kept for labelling."""
    out = []
    for i in range(0, len(records), batch):
        status, body = _post(f"{f['url']}/v1/models/churn:predict",
                             {"instances": records[i:i + batch]})
        assert status == 200, body
        out.append(body)
    f["served"] += out
    return out


def _monitor(f):
    out = f["fns"]["monitor"].handler({"detail-type": "Scheduled Event"}, None)
    [report] = out["reports"]
    return report, json.loads(f["s3"].get_object(Bucket=f["res"].artifact_bucket,
                                                 Key=report["report_key"])["Body"].read())


def test_upload_leads_to_artifact_and_champion(flow):
    res, table = flow["res"], flow["table"]
    assert flow["validated"] == 1 and flow["pumps"]["validate"].failed == 0
    assert flow["trained"] == 1 and flow["pumps"]["train"].failed == 0
    champion = table.get("MODEL#churn", "ALIAS#champion")
    assert champion["version"] == 1
    record = table.get("MODEL#churn", "VERSION#000001")
    assert record["status"] == "registered" and record["lineage"]["dataset_key"] == DATASET
    assert record["lineage"]["trigger"] == "upload"
    assert record["metrics"]["roc_auc"] > 0.7 and record["parity"]["passed"] is True
    assert "models/churn/000001/model.onnx" in _keys(flow, res.artifact_bucket, "models/churn/")
    assert _keys(flow, res.data_bucket, "models/") == []  # artifacts live in their own bucket


def test_predictions_through_the_gateway_then_a_monitoring_report(flow):
    outs = _predict(flow, feature_records(120, seed=4))
    assert all(len(b["predictions"]) == 40 and b["version"] == 1 for b in outs)
    status, body = _post(f"{flow['url']}/v1/models/churn:predict",
                         {"instances": [dict(feature_records(1)[0], plan="platinum")]})
    assert status == 400 and body["field"] == "plan"
    deadline = time.monotonic() + 10  # serve writes captures off the response path
    while not _keys(flow, flow["res"].artifact_bucket, "captures/churn/") \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _keys(flow, flow["res"].artifact_bucket, "captures/churn/")
    report, stored = _monitor(flow)
    assert report["status"] == "ok" and report["rows"] == 120 and not report["drifted"]
    assert stored["rows"] == 120 and set(stored["drift"]["features"]) >= {"age", "plan"}


def test_labels_upload_gives_live_metrics(flow):
    """labels/ -> validate (under its role) accepts them -> the monitor (under its role) lists
    and joins them with the captures: live metrics of the champion."""
    rows = [(f"{b['request_id']}#{i}", p) for b in flow["served"]
            for i, p in enumerate(b["predictions"])]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["request_id", "churned"])
    w.writerows([(rid, p if k % 4 else 1 - p) for k, (rid, p) in enumerate(rows[:100])])
    flow["w"].put("labels/churn/week-1.csv", buf.getvalue().encode())
    pump = flow["pumps"]["validate"]
    failed = pump.failed
    assert pump.drain() == 1 and pump.failed == failed
    report, stored = _monitor(flow)
    champion = stored["quality"]["champion"]
    assert champion["version"] == 1 and champion["labelled"] == 100
    assert champion["metrics"]["accuracy"] == pytest.approx(0.75)  # 1 in 4 labels disagrees
    assert stored["quality"]["labels"]["matched_rows"] == 100


def test_same_dataset_twice_gives_one_version(flow):
    res, sqs = flow["res"], flow["sqs"]
    flow["w"].put(DATASET, flow["data"])  # the same bytes again
    assert flow["pumps"]["validate"].drain() == 1
    # and a duplicated training job (at-least-once delivery of the train queue)
    record = flow["table"].get("MODEL#churn", "VERSION#000001")
    job = {"type": "train", "model": "churn", "dataset_key": DATASET,
           "sha256": record["lineage"]["dataset_sha256"], "rows": 1000,
           "content_hash": record["lineage"]["content_hash"]}
    sqs.send_message(QueueUrl=res.queue_urls["train"], MessageBody=json.dumps(job))
    assert flow["pumps"]["train"].drain() == 1
    assert [i["sk"] for i in flow["table"].query("MODEL#churn", "VERSION#")] == ["VERSION#000001"]


def test_broken_dataset_is_quarantined_with_report_and_original_kept(flow):
    from mlops_kit.core.synthetic import broken_churn_csv

    res, s3 = flow["res"], flow["s3"]
    _alerts(flow)
    flow["w"].put("datasets/churn/broken.csv", broken_churn_csv())
    failed = flow["pumps"]["validate"].failed
    assert flow["pumps"]["validate"].drain() == 1 and flow["pumps"]["validate"].failed == failed
    assert sorted(_keys(flow, res.data_bucket, "quarantine/churn/")) == [
        "quarantine/churn/broken.csv", "quarantine/churn/broken.csv.report.json"]
    report = json.loads(s3.get_object(Bucket=res.data_bucket,
                                      Key="quarantine/churn/broken.csv.report.json")["Body"].read())
    assert report["dataset_key"] == "datasets/churn/broken.csv"
    assert any(not r["passed"] for r in report["rules"])
    assert s3.head_object(Bucket=res.data_bucket, Key="datasets/churn/broken.csv")
    assert flow["pumps"]["train"].drain() == 0  # no training job
    assert [a["event"] for a in _alerts(flow)] == ["quarantined"]  # delivered through SNS


def test_drift_writes_a_retrain_dataset_that_trains_a_new_version(flow):
    """Drifted traffic -> the monitor (its role may write only datasets/*/retrain-*.csv) writes
    the retrain dataset -> S3 notifies validate -> train registers version 2 (trigger drift)."""
    res = flow["res"]
    _predict(flow, feature_records(300, seed=8, drift=1.0), batch=50)
    report, stored = _monitor(flow)
    assert report["drifted"] and stored["retrain"]["status"] == "requested"
    key = stored["retrain"]["dataset_key"]
    assert key.startswith("datasets/churn/retrain-") and key in _keys(
        flow, res.data_bucket, "datasets/churn/")
    assert stored["retrain"]["labelled_rows_added"] == 100  # the labels joined earlier
    assert flow["pumps"]["validate"].drain() == 1 and flow["pumps"]["train"].drain() == 1
    v2 = flow["table"].get("MODEL#churn", "VERSION#000002")
    assert v2["status"] == "registered" and v2["lineage"]["dataset_key"] == key
    assert v2["lineage"]["trigger"] == "drift"
    assert "models/churn/000002/model.onnx" in _keys(flow, res.artifact_bucket, "models/churn/")
    again, stored = _monitor(flow)  # the cooldown holds: no second retrain dataset
    assert stored["retrain"]["status"] in ("cooldown", "not_needed")
    assert len([k for k in _keys(flow, res.data_bucket, "datasets/churn/retrain-")]) == 1


def test_poison_message_is_final_acknowledged_and_notified(flow):
    """A body no retry can parse is a final failure: acknowledged on the first receive and
    announced on the topic, never redelivered towards the DLQ (only retryable failures are:
    test_faults_aws)."""
    res, sqs = flow["res"], flow["sqs"]
    _alerts(flow)
    sqs.send_message(QueueUrl=res.queue_urls["validate"], MessageBody="{not json")
    pump = flow["pumps"]["validate"]
    failed_before = pump.failed
    assert pump.poll_once() == 1 and pump.failed == failed_before
    alerts = _alerts(flow)
    assert [a["event"] for a in alerts] == ["job_failed"]
    assert "{not json" in alerts[0]["error"]
    dead = sqs.receive_message(QueueUrl=res.queue_urls["validate-dlq"], MaxNumberOfMessages=10,
                               AttributeNames=["All"]).get("Messages", [])
    assert dead == []
    attrs = sqs.get_queue_attributes(QueueUrl=res.queue_urls["validate"],
                                     AttributeNames=["ApproximateNumberOfMessages",
                                                     "ApproximateNumberOfMessagesNotVisible"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"
