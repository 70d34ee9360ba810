"""Each handler on its sample event; assertions are on the objects, items and messages."""

from __future__ import annotations

import json

import pytest

from mlops_kit.core.synthetic import CHURN_SPEC
from tests.functions.conftest import DATASET_KEY, sample
from tests.support import captured_rows

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.iam_enforced]


def _keys(s3, bucket, prefix):
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def _drain(sqs, url):
    out = []
    while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                      AttributeNames=["All"]).get("Messages", []):
        out += msgs
        for m in msgs:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def _table(res):
    from mlops_kit.adapters.aws import DynamoTable, client

    return DynamoTable(res.table, lambda: client("dynamodb", region=res.region))


@pytest.fixture(scope="module")
def validated(world):
    res, fns, s3, sqs = world
    out = fns["validate"].handler(sample("s3-put-in-sqs.json"), None)
    again = fns["validate"].handler(sample("s3-put-in-sqs.json"), None)  # at-least-once
    jobs = _drain(sqs, res.queue_urls["train"])
    return out, again, jobs


@pytest.fixture(scope="module")
def trained(world, validated):
    res, fns, s3, sqs = world
    event = sample("train-job-sqs.json")
    event["Records"][0]["body"] = validated[2][0]["Body"]
    return fns["train"].handler(event, None)


def test_validate_decodes_key_and_enqueues_one_training_job(world, validated):
    res, _, s3, _ = world
    out, again, jobs = validated
    assert out == {"batchItemFailures": []} and again == {"batchItemFailures": []}
    assert len(jobs) == 1  # the redelivered notification did not train twice
    job = json.loads(jobs[0]["Body"])
    assert job["dataset_key"] == DATASET_KEY and job["rows"] == 800
    assert job["report_key"] in _keys(s3, res.artifact_bucket, "reports/churn/validation/")
    markers = _table(res).query("IDEMPOTENCY", f"VALIDATED#{DATASET_KEY}#")
    assert len(markers) == 1 and markers[0]["outcome"]["status"] == "validated"


def test_s3_test_event_is_ignored(world):
    res, fns, _, sqs = world
    before = len(_table(res).query("IDEMPOTENCY"))
    assert fns["validate"].handler(sample("s3-test-event-in-sqs.json"), None) == {
        "batchItemFailures": []}
    assert _drain(sqs, res.queue_urls["train"]) == []
    assert len(_table(res).query("IDEMPOTENCY")) == before


def test_poison_and_final_failures_are_acknowledged_not_retried(world):
    """A body that is no S3 notification, and an object that no longer exists, can never
    succeed: each is a final outcome (logged, notified), so none is in batchItemFailures and
    nothing is redelivered towards the DLQ. Retryable failures are (test_faults_aws)."""
    res, fns, _, sqs = world
    good = sample("s3-test-event-in-sqs.json")["Records"][0]
    poison = dict(good, messageId="poison-1", body="this is not json")
    not_s3 = dict(good, messageId="poison-2", body=json.dumps({"hello": "world"}))
    missing = sample("s3-put-in-sqs.json")["Records"][0]
    missing["messageId"] = "missing-object"
    missing["body"] = missing["body"].replace("churn+jan+2026.csv", "nope.csv")
    from mlops_kit.adapters.aws import acting_as

    validate = fns["validate"].module  # the handler's module, run under validate's role:
    with acting_as(res.identities["validate"]):  # S3 answers its HEAD of a missing key with 403
        outcomes = [validate.record_handler(validate.SQSRecord(r))
                    for r in (poison, not_s3, missing)]
    assert [[o["status"] for o in out] for out in outcomes] == [["failed"]] * 3
    assert all(o["final"] for out in outcomes for o in out)
    assert "not JSON" in outcomes[0][0]["error"]
    assert "neither an S3 notification" in outcomes[1][0]["error"]
    assert outcomes[2][0]["error_type"] == "NotFound"
    # the module's handler, not the IAM-acting wrapper: this is about final vs retryable; under
    # enforcement moto refuses the prefix-conditioned listing a missing key's probe makes (it
    # evaluates StringEquals only; tests/functions/test_iam_enforced.py covers the policies)
    out = validate.handler({"Records": [good, poison, not_s3, missing]}, None)
    assert out["batchItemFailures"] == []


def test_labels_upload_is_accepted(world):
    res, fns, s3, _ = world
    s3.put_object(Bucket=res.data_bucket, Key="labels/churn/labels-2026-01-15.csv",
                  Body=b"request_id,churned\nr1,1\n")
    assert fns["validate"].handler(sample("labels-upload-in-sqs.json"), None) == {
        "batchItemFailures": []}


def test_train_registers_artifact_and_champion(world, trained):
    res, _, s3, _ = world
    assert trained == {"batchItemFailures": []}
    champion = _table(res).get("MODEL#churn", "ALIAS#champion")
    assert champion["version"] == 1
    version = _table(res).get("MODEL#churn", "VERSION#000001")
    assert version["status"] == "registered" and isinstance(version["metrics"]["roc_auc"], float)
    artifact = s3.get_object(Bucket=res.artifact_bucket, Key="models/churn/000001/model.onnx")
    import hashlib

    assert hashlib.sha256(artifact["Body"].read()).hexdigest() == version["sha256"]


def test_train_rejects_a_bad_job_for_good(world):
    _, fns, _, _ = world
    event = sample("train-job-sqs.json")
    event["Records"][0]["body"] = json.dumps({"model": "churn"})
    # a body that is no training job is final: acknowledged (and notified), never retried
    assert fns["train"].handler(event, None)["batchItemFailures"] == []


@pytest.mark.parametrize("name", ["http-api-v2-predict.json", "function-url-predict.json"])
def test_serve_predicts_and_captures(world, trained, name):
    res, fns, s3, _ = world
    event = sample(name)
    out = fns["serve"].handler(event, None)
    body = json.loads(out["body"])
    n = len(json.loads(event["body"])["instances"])
    assert out["statusCode"] == 200, body
    assert len(body["predictions"]) == n and body["version"] == 1 and body["model"] == "churn"
    assert body["request_id"] == event["requestContext"]["requestId"]
    assert out["headers"]["content-type"] == "application/json"
    # capture_max_age_s=0: a flush is due after each invocation, written on the buffer's
    # background thread (the response did not wait for it)
    assert fns["serve"].module._api.service.capture.drain(10)
    captured = [r for key in _keys(s3, res.artifact_bucket, "captures/churn/")
                for r in captured_rows(s3.get_object(Bucket=res.artifact_bucket,
                                                     Key=key)["Body"].read())]
    assert event["requestContext"]["requestId"] in {c["request_id"] for c in captured}


def _captured_ids(res, s3) -> set[str]:
    return {r["request_id"] for key in _keys(s3, res.artifact_bucket, "captures/churn/")
            for r in captured_rows(s3.get_object(Bucket=res.artifact_bucket,
                                                 Key=key)["Body"].read())}


def test_serve_answers_before_its_capture_is_written(world, trained):
    """Issue 28: the capture write is off the response path. The store's put is held on an
    event: the invocation still returns its 200, and the rows land once the write may go."""
    import threading

    res, fns, s3, _ = world
    serve, module = fns["serve"], fns["serve"].module
    event = sample("http-api-v2-predict.json")
    event["requestContext"]["requestId"] = "off-the-path-1"
    serve.handler(dict(event, requestContext=dict(event["requestContext"],
                                                  requestId="warm-up")), None)
    capture = module._api.service.capture
    assert capture.drain(10)
    release, entered = threading.Event(), threading.Event()
    put = capture.store.put

    def held_put(*a, **kw):
        entered.set()
        release.wait(10)
        return put(*a, **kw)

    capture.store.put = held_put
    try:
        out = serve.handler(event, None)  # due (capture_max_age_s=0): the flush is handed off
        assert out["statusCode"] == 200
        assert entered.wait(10) and not release.is_set()  # the write is still held
        assert "off-the-path-1" not in _captured_ids(res, s3)
    finally:
        release.set()
        del capture.store.put
    assert capture.drain(10)
    assert "off-the-path-1" in _captured_ids(res, s3)


def test_serve_sigterm_hook_writes_what_is_buffered(world, trained, monkeypatch):
    """Lambda sends the runtime SIGTERM at shutdown when an extension is registered
    (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html#runtimes-
    lifecycle-shutdown): the hook writes the rows not yet due, then hands over."""
    res, fns, s3, _ = world
    serve, module = fns["serve"], fns["serve"].module
    event = sample("http-api-v2-predict.json")
    event["requestContext"]["requestId"] = "at-sigterm-1"
    serve.handler(dict(event, requestContext=dict(event["requestContext"],
                                                  requestId="warm-up-2")), None)
    capture = module._api.service.capture
    assert capture.drain(10)
    monkeypatch.setattr(capture, "max_age_s", 3600.0)
    monkeypatch.setattr(capture, "due", lambda: False)  # nothing is flushed by the invocation
    assert serve.handler(event, None)["statusCode"] == 200
    assert capture.pending_rows >= 1 and "at-sigterm-1" not in _captured_ids(res, s3)
    handed_over = []
    monkeypatch.setattr(module, "_previous_sigterm", lambda *a: handed_over.append(a))
    module._on_sigterm(15, None)
    assert handed_over == [(15, None)] and capture.pending_rows == 0
    assert "at-sigterm-1" in _captured_ids(res, s3)


def test_serve_answers_binary_v2_tensors_through_the_gateway(world, trained):
    """Open Inference Protocol binary tensors on Lambda: the gateway hands the body over in
    base64 and takes the binary answer back in base64, header length included."""
    import base64
    import struct

    import numpy as np

    _, fns, _, _ = world
    event = sample("http-api-v2-predict.json")
    records = json.loads(event["body"])["instances"]
    v1 = json.loads(fns["serve"].handler(event, None)["body"])
    spec = [f for f in CHURN_SPEC["features"]]
    inputs, raw = [], b""
    for f in spec:
        values = [r[f["name"]] for r in records]
        if f["type"] == "numeric":
            data = np.array([np.nan if v is None else v for v in values], "<f8").tobytes()
            dtype = "FP64"
        else:
            data = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)
            dtype = "BYTES"
        inputs.append({"name": f["name"], "shape": [len(values), 1], "datatype": dtype,
                       "parameters": {"binary_data_size": len(data)}})
        raw += data
    head = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v2/models/churn/infer"
    event["headers"]["content-type"] = "application/octet-stream"
    event["headers"]["inference-header-content-length"] = str(len(head))
    event.update(body=base64.b64encode(head + raw).decode(), isBase64Encoded=True)
    out = fns["serve"].handler(event, None)
    assert out["statusCode"] == 200, out["body"][:300]
    payload = base64.b64decode(out["body"]) if out["isBase64Encoded"] else out["body"].encode()
    n = int(out["headers"]["inference-header-content-length"])
    answer = json.loads(payload[:n])
    label, proba = answer["outputs"]
    assert label["datatype"] == "INT64" and "data" not in label
    labels = np.frombuffer(payload[n:n + label["parameters"]["binary_data_size"]], "<i8")
    probs = np.frombuffer(payload[n + label["parameters"]["binary_data_size"]:], "<f4")
    assert labels.tolist() == v1["predictions"]
    assert np.allclose(probs.reshape(len(records), -1), v1["probabilities"], atol=1e-6)


def test_serve_errors_are_json_with_status(world, trained):
    _, fns, _, _ = world
    bad = fns["serve"].handler(sample("http-api-v2-predict-bad.json"), None)
    assert bad["statusCode"] == 400
    assert json.loads(bad["body"])["field"] == "age" and "Traceback" not in bad["body"]
    missing = sample("http-api-v2-predict.json")
    missing["rawPath"] = "/v1/models/nomodel:predict"
    assert fns["serve"].handler(missing, None)["statusCode"] == 404
    broken = sample("http-api-v2-predict.json")
    broken.update(body="!!!", isBase64Encoded=True)
    assert fns["serve"].handler(broken, None)["statusCode"] == 400
    health = sample("http-api-v2-predict.json")
    health.update(rawPath="/v2/health/ready", body=None)
    health["requestContext"]["http"]["method"] = "GET"  # POST is a 405 with Allow
    assert json.loads(fns["serve"].handler(health, None)["body"]) == {"live": True, "ready": True}
    meta = sample("http-api-v2-predict.json")
    meta.update(rawPath="/prod/v2/models/churn", body=None)  # a named stage prefixes rawPath
    meta["requestContext"].update(stage="prod", http={"method": "GET"})
    out = fns["serve"].handler(meta, None)
    assert out["statusCode"] == 200 and json.loads(out["body"])["name"] == "churn"


def test_monitor_writes_a_report_per_model(world, trained):
    res, fns, s3, _ = world
    out = fns["monitor"].handler(sample("schedule.json"), None)
    [report] = out["reports"]
    assert report["model"] == "churn" and report["version"] == 1
    assert report["report_key"] in _keys(s3, res.artifact_bucket, "reports/churn/monitoring/")


def test_invoke_cli_runs_a_handler_on_a_sample(world, trained):
    from typer.testing import CliRunner

    import mlops_kit.cli.cloud  # noqa: F401 (registers invoke)
    from mlops_kit.cli.app import app
    from tests.functions.conftest import EVENTS

    result = CliRunner().invoke(app, ["invoke", "serve", "--event",
                                      str(EVENTS / "http-api-v2-predict.json"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["statusCode"] == 200 and len(json.loads(out["body"])["predictions"]) == 2


def test_serve_shows_the_console_behind_the_gateway(world, trained):
    """On AWS the gateway authorizes every route (IAM or JWT): the console pages are served
    by the same function, read through the AWS adapters, with the same headers."""
    res, fns, s3, _ = world
    fns["monitor"].handler(sample("schedule.json"), None)

    def get(path, stage="$default"):
        event = sample("http-api-v2-predict.json")
        event.update(rawPath=path, body=None, isBase64Encoded=False)
        event["requestContext"].update(stage=stage, http={"method": "GET"})
        return fns["serve"].handler(event, None)

    for path in ("/ui/", "/ui/models/churn", "/ui/models/churn/versions/1",
                 "/ui/models/churn/report"):
        out = get(path)
        assert out["statusCode"] == 200, (path, out["body"][:300])
        assert out["headers"]["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in out["headers"]["content-security-policy"]
        assert out["isBase64Encoded"] is False and "churn" in out["body"]
    assert 'data-feature="monthly_charges"' in get("/ui/models/churn")["body"]
    assert "Will a customer cancel" in get("/ui/models/churn/versions/1")["body"]
    staged = get("/prod/ui", stage="prod")  # a named stage: relative redirect into the folder
    assert staged["statusCode"] == 308 and staged["headers"]["location"] == "ui/"
    assert get("/ui/static/console.css")["headers"]["content-type"].startswith("text/css")


def test_a_scoring_upload_is_scored_by_validate_under_its_role(world, trained):
    """Batch scoring on AWS: the S3 notification of a scoring/ upload reaches the validate
    function, which scores it under its own role (IAM enforced) into predictions/."""
    from mlops_kit.core.synthetic import churn_csv

    res, fns, s3, _ = world
    s3.put_object(Bucket=res.data_bucket, Key="scoring/churn/nightly 2026-01-15.csv",
                  Body=churn_csv(300, seed=9))
    assert fns["validate"].handler(sample("scoring-upload-in-sqs.json"), None) == {
        "batchItemFailures": []}
    manifest = json.loads(s3.get_object(
        Bucket=res.data_bucket,
        Key="predictions/churn/nightly 2026-01-15/_manifest.json")["Body"].read())
    assert manifest["rows_scored"] == 300 and manifest["version"] == 1
    assert manifest["parts"] == ["predictions/churn/nightly 2026-01-15/part-00000.parquet"]


def test_a_big_scoring_upload_fans_out_over_the_validate_queue_under_its_role(world, trained,
                                                                             monkeypatch):
    """Scale out on AWS (IAM enforced): validate plans the chunks and sends one message per
    chunk to its own queue; each chunk, delivered twice, is scored and counted once in the
    table (a conditional transaction under the validate role); the last writes the manifest."""
    import sys
    from urllib.parse import quote_plus

    from mlops_kit.core.synthetic import churn_csv

    res, fns, s3, sqs = world
    wiring = sys.modules["_wiring"]
    monkeypatch.setenv("MLOPSKIT_SCORING_CHUNK_BYTES", "25000")
    wiring.reset()
    try:
        # with a sample of the scored rows captured for monitoring (validate's captures/ grant)
        s3.put_object(Bucket=res.data_bucket, Key="scoring/churn/big night.json",
                      Body=b'{"capture": true, "capture_rate": 0.5}')
        s3.put_object(Bucket=res.data_bucket, Key="scoring/churn/big night.csv",
                      Body=churn_csv(1200, seed=12))
        event = sample("scoring-upload-in-sqs.json")
        note = json.loads(event["Records"][0]["body"])
        note["Records"][0]["s3"]["object"]["key"] = quote_plus("scoring/churn/big night.csv")
        event["Records"][0]["body"] = json.dumps(note)
        assert fns["validate"].handler(event, None) == {"batchItemFailures": []}
        # (the upload's own notification, which moto delivers too, was handled above)
        chunks = [m for m in _drain(sqs, res.queue_urls["validate"])
                  if "score_chunk" in json.loads(m["Body"])]
        assert len(chunks) >= 3
        for m in chunks * 2:  # every chunk delivered twice
            record = {**event["Records"][0], "body": m["Body"], "messageId": m["MessageId"]}
            assert fns["validate"].handler({"Records": [record]}, None) == {
                "batchItemFailures": []}
    finally:
        monkeypatch.delenv("MLOPSKIT_SCORING_CHUNK_BYTES")
        wiring.reset()
    manifest = json.loads(s3.get_object(
        Bucket=res.data_bucket, Key="predictions/churn/big night/_manifest.json")["Body"].read())
    assert manifest["rows_in"] == manifest["rows_scored"] == 1200
    assert manifest["chunked"] is True and len(manifest["chunks"]) == len(chunks)
    assert sum(c["rows_in"] for c in manifest["chunks"]) == 1200
    parts = _keys(s3, res.data_bucket, "predictions/churn/big night/part-")
    assert sorted(parts) == sorted(manifest["parts"])
    [job] = [i for i in _table(res).query("SCORING#churn", "JOB#big night#")]
    assert job["status"] == "scored" and job["done"] == job["total"] == len(chunks)
    captured = [r for k in _keys(s3, res.artifact_bucket, "captures/churn/")
                for r in captured_rows(s3.get_object(Bucket=res.artifact_bucket, Key=k)[
                    "Body"].read()) if r["request_id"].startswith("score:big night:")]
    assert 450 < len(captured) < 750  # half of 1,200 rows, once (every chunk came twice)
