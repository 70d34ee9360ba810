"""The whole lifecycle on the Azure code path, on Azurite: uploads with an unmodified
azure-storage-blob client, BlobCreated delivered to the validate queue (the emulator's
Event Grid stand-in), the function app's queue triggers run the way the Functions host runs
them (retries, poison queue), predictions over HTTP through the App Service authentication
stand-in, the monitor's timer: good upload -> champion served; bad upload -> quarantine and
report; labels -> live metrics; drift -> retrain -> a new version."""

from __future__ import annotations

import base64
import csv
import io
import json
import urllib.error
import urllib.request
import uuid

import pytest
import yaml

pytest.importorskip("azure.functions")
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

DATASET = "datasets/churn/churn 2026 q1.csv"


@pytest.fixture(scope="module")
def flow(azurite):
    from azure.storage.blob import BlobServiceClient

    from mlops_kit.adapters.azure.factory import build
    from mlops_kit.core.synthetic import churn_csv
    from mlops_kit.emulate.azure_emulator import AzureEmulator
    from mlops_kit.settings import Settings
    from tests.support import FAST_SPEC

    # threshold 0.5: the planted drift scores PSI > 1; a clean window of ~200 rows stays below
    spec = {**FAST_SPEC, "monitoring": {"drift_method": "psi", "threshold": 0.5,
                                        "retrain_on_drift": True, "min_rows": 50}}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPSKIT_REFRESH_SECONDS", "0")
        mp.setenv("MLOPSKIT_CAPTURE_MAX_AGE_S", "0")
        emu = AzureEmulator(connection_string=azurite.connection_string,
                            suffix=uuid.uuid4().hex[:8], retry_after=0)
        emu.setup()
        url = emu.start_gateway()
        # the user's side: an unmodified SDK client on the printed connection string
        blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
        data = blobs.get_container_client(emu.names.containers["data"])
        data.upload_blob("specs/churn.yaml", yaml.safe_dump(spec).encode())
        data.upload_blob(DATASET, churn_csv(1000, seed=11))
        handled = emu.drain()
        yield {"emu": emu, "url": url, "blobs": blobs, "data": data, "handled": handled,
               "adapters": build(Settings()), "token": emu.auth.token}
        emu.stop()


def call(f, method, path, body=None, token=True, headers=None):
    h = {"content-type": "application/json", **(headers or {})}
    if token:
        h["authorization"] = f"Bearer {f['token']}"
    req = urllib.request.Request(f["url"] + path, method=method, headers=h,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


def alerts(f):
    return [m["message"] for m in f["adapters"].notifier.messages()]


def features(n, seed, drift=0.0):
    from tests.support import feature_records

    return feature_records(n, seed=seed, drift=drift)


def test_upload_leads_to_a_champion_served_over_http(flow):
    table, names = flow["adapters"].table, flow["emu"].names
    assert flow["handled"] == 3  # the event, the validate message, the training job
    assert table.get("MODEL#churn", "ALIAS#champion")["version"] == 1
    record = table.get("MODEL#churn", "VERSION#000001")
    assert record["status"] == "registered" and record["lineage"]["dataset_key"] == DATASET
    artifacts = flow["blobs"].get_container_client(names.containers["artifacts"])
    assert "models/churn/000001/model.onnx" in [b.name for b in artifacts.list_blobs("models/")]

    status, body = call(flow, "POST", "/v1/models/churn:predict",
                        {"instances": features(3, seed=4)})
    assert status == 200 and body["version"] == 1 and len(body["predictions"]) == 3
    assert call(flow, "POST", "/v1/models/churn:predict", {"instances": []}, token=False) == \
        (401, None)  # the platform's 401: no function ran
    status, body = call(flow, "POST", "/v1/models/churn:predict",
                        {"instances": [dict(features(1, seed=4)[0], plan="platinum")]})
    assert status == 400 and body["field"] == "plan"
    v2 = {"inputs": [{"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str)
                      else "FP32", "data": [v]} for k, v in features(1, seed=5)[0].items()]}
    status, body = call(flow, "POST", "/v2/models/churn/infer", v2)
    assert status == 200 and body["model_version"] == "1"
    assert call(flow, "GET", "/v2/health/ready")[0] == 200
    assert call(flow, "GET", "/no/such/route") == (404, None)  # the host's 404
    # the read-only console, behind the same authentication
    req = urllib.request.Request(flow["url"] + "/ui/", headers={
        "authorization": f"Bearer {flow['token']}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200 and resp.headers["content-type"].startswith("text/html")
        assert b"churn" in resp.read()
    assert call(flow, "GET", "/ui/", token=False) == (401, None)
    # a client cannot pass as authenticated by sending the platform's headers itself
    assert call(flow, "GET", "/v1/models/churn", token=False,
                headers={"x-ms-client-principal-id": "forged"}) == (401, None)


def test_bad_upload_is_quarantined_with_a_report_and_the_original_kept(flow):
    from mlops_kit.core.synthetic import broken_churn_csv

    before = len(alerts(flow))
    flow["data"].upload_blob("datasets/churn/broken.csv", broken_churn_csv())
    assert flow["emu"].drain() == 2  # the event and the validate message: no training job
    keys = [b.name for b in flow["data"].list_blobs("quarantine/churn/")]
    assert keys == ["quarantine/churn/broken.csv", "quarantine/churn/broken.csv.report.json"]
    report = json.loads(flow["data"].download_blob(
        "quarantine/churn/broken.csv.report.json").readall())
    assert report["dataset_key"] == "datasets/churn/broken.csv"
    assert any(not r["passed"] for r in report["rules"])
    assert flow["data"].get_blob_client("datasets/churn/broken.csv").exists()
    assert [a["event"] for a in alerts(flow)[before:]] == ["quarantined"]


def test_labels_lead_to_live_metrics(flow):
    rows = []
    for k in range(4):
        status, body = call(flow, "POST", "/v1/models/churn:predict",
                            {"instances": features(50, seed=21 + k)},
                            headers={"x-request-id": f"live{k}"})
        assert status == 200
        rows += [(f"live{k}#{i}", p) for i, p in enumerate(body["predictions"])]  # row ids
    labelled = rows[:160]  # 40 captured rows stay unlabelled
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["request_id", "churned"])
    w.writerows([(rid, p if k % 4 else 1 - p) for k, (rid, p) in enumerate(labelled)])  # 75%
    flow["data"].upload_blob("labels/churn/day1.csv", buf.getvalue().encode())
    assert flow["emu"].drain() == 2  # the event and the validate message (labels received)
    flow["emu"].run_timer("monitor")
    artifacts = flow["blobs"].get_container_client(flow["emu"].names.containers["artifacts"])
    report = json.loads(artifacts.download_blob("reports/churn/monitoring/latest.json").readall())
    champ = report["quality"]["champion"]
    assert champ["version"] == 1 and champ["labelled"] == 160
    assert champ["metrics"]["accuracy"] == pytest.approx(0.75)
    assert not report["drifted"]


def test_drift_leads_to_a_retrain_and_a_new_version(flow):
    for i in range(4):
        status, _ = call(flow, "POST", "/v1/models/churn:predict",
                         {"instances": features(50, seed=30 + i, drift=1.0)})
        assert status == 200
    flow["emu"].run_timer("monitor")
    retrain = [b.name for b in flow["data"].list_blobs("datasets/churn/retrain-")]
    assert len(retrain) == 1
    # Event Grid (here its stand-in) announces the monitor's write like any upload
    assert flow["emu"].drain() == 3
    table = flow["adapters"].table
    v2 = table.get("MODEL#churn", "VERSION#000002")
    assert v2["status"] in ("registered", "rejected")
    assert v2["lineage"]["dataset_key"] == retrain[0] and v2["lineage"]["trigger"] == "drift"
    assert "drift" in [a["event"] for a in alerts(flow)]


def test_a_malformed_message_is_final_a_transient_fault_ends_in_the_poison_queue(flow):
    from mlops_kit.errors import TransientError

    emu = flow["emu"]
    queues, validate = emu.queues, emu.names.queues["validate"]
    before = len(alerts(flow))
    queues.get_queue_client(validate).send_message(base64.b64encode(b"{not json").decode())
    assert emu.drain() == 1
    assert [a["event"] for a in alerts(flow)[before:]] == ["job_failed"]
    poison = queues.get_queue_client(f"{validate}-poison")
    assert list(poison.peek_messages()) == []

    ctx = emu.app.module.runtime.backend().ctx
    store = ctx.store

    class Throttled:
        def __getattr__(self, name):
            def fail(*a, **k):
                raise TransientError(f"{name}: service unavailable (ServerBusy)")
            return fail

    ctx.store = Throttled()
    try:
        flow["data"].upload_blob("datasets/churn/later.csv", b"a,b\n1,2\n")
        listener = emu.listeners["validate"]
        failed = listener.failed
        emu.drain()
    finally:
        ctx.store = store
    assert listener.failed - failed == emu.app.host.max_dequeue_count
    # the last attempt announced the poison queue (as the DLQ alarm does on AWS)
    [dead_letter] = [a for a in alerts(flow)[before:] if a["event"] == "dead_letter"]
    assert dead_letter["queue"] == validate and "ServerBusy" in dead_letter["error"]
    [dead] = poison.peek_messages()
    event = json.loads(base64.b64decode(dead.content))
    assert event["eventType"] == "Microsoft.Storage.BlobCreated"
    assert event["subject"].endswith("/blobs/datasets/churn/later.csv")
    assert queues.get_queue_client(validate).get_queue_properties().approximate_message_count == 0


def test_a_message_that_is_not_base64_is_poisoned_without_running_the_function(flow):
    emu = flow["emu"]
    train = emu.names.queues["train"]
    emu.queues.get_queue_client(train).send_message("{plain json is not base64}")
    listener = emu.listeners["train"]
    succeeded = listener.succeeded
    emu.drain()
    assert listener.succeeded == succeeded
    poison = emu.queues.get_queue_client(f"{train}-poison")
    assert [m.content for m in poison.peek_messages()] == ["{plain json is not base64}"]


def test_the_event_grid_stand_in_announces_writes_under_its_prefixes_only(azurite):
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

    from mlops_kit.emulate.event_grid import BlobCreatedPoller

    name = f"eg{uuid.uuid4().hex[:10]}"
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    queues = QueueServiceClient.from_connection_string(azurite.connection_string)
    container = blobs.create_container(name)
    queue = queues.create_queue(name)
    try:
        container.upload_blob("datasets/m/old.csv", b"1")  # before the subscription existed
        poller = BlobCreatedPoller(blobs, queues, "devstoreaccount1", name,
                                   [("datasets/", name), ("labels/", name)])
        poller.prime()
        container.upload_blob("specs/m.yaml", b"x")  # no trigger on specs/
        assert poller.poll_once() == 0
        container.upload_blob("datasets/m/a b.csv", b"1")
        container.upload_blob("datasets/m/old.csv", b"2", overwrite=True)  # a new write
        assert poller.poll_once() == 2 and poller.poll_once() == 0
        container.delete_blob("datasets/m/a b.csv")
        container.upload_blob("datasets/m/a b.csv", b"3")  # written again after a delete
        assert poller.poll_once() == 1
        events = [json.loads(base64.b64decode(m.content))
                  for m in queue.receive_messages(max_messages=32)]
        assert sorted(e["subject"].rsplit("/blobs/", 1)[1] for e in events) == [
            "datasets/m/a b.csv", "datasets/m/a b.csv", "datasets/m/old.csv"]
        assert {e["eventType"] for e in events} == {"Microsoft.Storage.BlobCreated"}
        assert all(e["data"]["url"].endswith(e["subject"].rsplit("/blobs/", 1)[1].replace(
            " ", "%20")) for e in events)
    finally:
        blobs.delete_container(name)
        queues.delete_queue(name)
