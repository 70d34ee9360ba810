"""The whole lifecycle on the AWS code path under moto: a boto3 put_object with real S3->SQS
notification delivery, the handlers driven from SQS the way the Lambda event source does,
predictions through an HTTP API v2 gateway, a monitoring report, duplicates, quarantine, DLQ."""

from __future__ import annotations

import json
import urllib.request

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

DATASET = "datasets/churn/churn 2026 q1.csv"  # S3 notifies it URL-encoded (+ for spaces)


@pytest.fixture(scope="module")
def flow():
    import yaml

    from mlops_kit.adapters.aws import DynamoTable, client
    from mlops_kit.core.synthetic import CHURN_SPEC, churn_csv
    from mlops_kit.emulate import SqsPump, context_for, in_process, load_function, make_gateway
    from mlops_kit.topology import default_topology

    topo = default_topology()
    with in_process(topo, extra_env={"MLOPSKIT_CAPTURE_MAX_AGE_S": "0"}) as res:
        c = lambda s: client(s, region=res.region)  # noqa: E731
        s3, sqs, sns = c("s3"), c("sqs"), c("sns")
        tap = sqs.create_queue(QueueName="alerts-tap")["QueueUrl"]
        tap_arn = sqs.get_queue_attributes(QueueUrl=tap, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=res.topic_arn, Protocol="sqs", Endpoint=tap_arn,
                      Attributes={"RawMessageDelivery": "true"})
        fns = {f.name: load_function(f.name) for f in topo.functions}
        pumps = {q.name: SqsPump(sqs, res.queue_urls[q.name], res.queue_arns[q.name],
                                 fns[q.consumer].handler, batch_size=q.batch_size,
                                 region=res.region, retry_after=0,
                                 context=lambda n=q.consumer: context_for(topo, n))
                 for q in topo.queues}
        gateway = make_gateway(fns["serve"].handler, lambda: context_for(topo, "serve"))
        import threading

        threading.Thread(target=gateway.serve_forever, daemon=True).start()
        s3.put_object(Bucket=res.data_bucket, Key="specs/churn.yaml",
                      Body=yaml.safe_dump(CHURN_SPEC).encode())
        data = churn_csv(1000, seed=11)
        s3.put_object(Bucket=res.data_bucket, Key=DATASET, Body=data)
        validated = pumps["validate"].drain()
        trained = pumps["train"].drain()
        url = f"http://127.0.0.1:{gateway.server_address[1]}"
        yield {"res": res, "s3": s3, "sqs": sqs, "pumps": pumps, "fns": fns, "url": url,
               "data": data, "tap": tap, "validated": validated, "trained": trained,
               "table": DynamoTable(res.table, lambda: c("dynamodb"))}
        gateway.shutdown()


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


def test_upload_leads_to_artifact_and_champion(flow):
    res, table = flow["res"], flow["table"]
    assert flow["validated"] == 2  # moto's s3:TestEvent (ignored) + the dataset
    assert flow["pumps"]["validate"].failed == 0 and flow["trained"] == 1
    champion = table.get("MODEL#churn", "ALIAS#champion")
    assert champion["version"] == 1
    record = table.get("MODEL#churn", "VERSION#000001")
    assert record["status"] == "registered" and record["lineage"]["dataset_key"] == DATASET
    assert record["metrics"]["roc_auc"] > 0.7 and record["parity"]["passed"] is True
    assert "models/churn/000001/model.onnx" in _keys(flow, res.artifact_bucket, "models/churn/")
    assert _keys(flow, res.data_bucket, "models/") == []  # artifacts live in their own bucket


def test_predictions_through_the_gateway_then_a_monitoring_report(flow):
    from mlops_kit.core.synthetic import churn_records

    url = f"{flow['url']}/v1/models/churn:predict"
    records = [{k: v for k, v in r.items() if k not in ("churned", "customer_id")}
               for r in churn_records(120, seed=4)]
    for i in range(0, 120, 40):
        status, body = _post(url, {"instances": records[i:i + 40]})
        assert status == 200 and len(body["predictions"]) == 40 and body["version"] == 1
    status, body = _post(url, {"instances": [dict(records[0], plan="platinum")]})
    assert status == 400 and body["field"] == "plan"
    res = flow["res"]
    assert _keys(flow, res.artifact_bucket, "captures/churn/")
    out = flow["fns"]["monitor"].handler({"detail-type": "Scheduled Event"}, None)
    [report] = out["reports"]
    assert report["status"] == "ok" and report["rows"] == 120
    stored = json.loads(flow["s3"].get_object(Bucket=res.artifact_bucket,
                                              Key=report["report_key"])["Body"].read())
    assert stored["rows"] == 120 and set(stored["drift"]["features"]) >= {"age", "plan"}


def test_same_dataset_twice_gives_one_version(flow):
    res, sqs = flow["res"], flow["sqs"]
    flow["s3"].put_object(Bucket=res.data_bucket, Key=DATASET, Body=flow["data"])  # same bytes
    assert flow["pumps"]["validate"].drain() == 1
    # and a duplicated training job (at-least-once delivery of the train queue)
    record = flow["table"].get("MODEL#churn", "VERSION#000001")
    job = {"type": "train", "model": "churn", "dataset_key": DATASET,
           "sha256": record["lineage"]["dataset_sha256"], "rows": 1000}
    sqs.send_message(QueueUrl=res.queue_urls["train"], MessageBody=json.dumps(job))
    assert flow["pumps"]["train"].drain() == 1
    assert [i["sk"] for i in flow["table"].query("MODEL#churn", "VERSION#")] == ["VERSION#000001"]


def test_broken_dataset_is_quarantined_with_report_and_original_kept(flow):
    from mlops_kit.core.synthetic import broken_churn_csv

    res, s3 = flow["res"], flow["s3"]
    _alerts(flow)
    s3.put_object(Bucket=res.data_bucket, Key="datasets/churn/broken.csv", Body=broken_churn_csv())
    assert flow["pumps"]["validate"].drain() == 1
    assert sorted(_keys(flow, res.data_bucket, "quarantine/churn/")) == [
        "quarantine/churn/broken.csv", "quarantine/churn/broken.csv.report.json"]
    report = json.loads(s3.get_object(Bucket=res.data_bucket,
                                      Key="quarantine/churn/broken.csv.report.json")["Body"].read())
    assert report["dataset_key"] == "datasets/churn/broken.csv"
    assert any(not r["passed"] for r in report["rules"])
    assert s3.head_object(Bucket=res.data_bucket, Key="datasets/churn/broken.csv")
    assert flow["pumps"]["train"].drain() == 0  # no training job
    assert [a["event"] for a in _alerts(flow)] == ["quarantined"]  # delivered through SNS


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
