"""The local server over a real loopback socket: V1 and V2 protocols, auth, errors, limits."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys

import pytest

from mlops_kit.local.auth import ensure_token
from mlops_kit.local.server import ServerThread, build_api
from tests.support import captured_rows, feature_records


@pytest.fixture
def server(trained):
    token = ensure_token(trained.settings.workspace)
    srv = ServerThread(build_api(trained, auth=True, workspace=trained.settings.workspace)).start()
    yield srv, token, trained
    srv.stop()


def call(srv, method, path, body=None, token=None, raw: bytes | None = None, headers=None):
    host, port = srv.server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"content-type": "application/json", **(headers or {})}
    if token:
        h["authorization"] = f"Bearer {token}"
    conn.request(method, path, body=data, headers=h)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, (json.loads(payload) if payload else None), dict(resp.getheaders())


def test_v1_predict_records_and_arrays(server):
    srv, token, b = server
    recs = feature_records(3)
    status, body, headers = call(srv, "POST", "/v1/models/churn:predict", {"instances": recs},
                                 token)
    assert status == 200, body
    assert body["model"] == "churn" and body["version"] == 1
    assert len(body["predictions"]) == 3 and set(body["predictions"]) <= {0, 1}
    assert all(abs(sum(p) - 1) < 1e-5 for p in body["probabilities"])
    assert headers["x-request-id"] == body["request_id"]
    names = [f["name"] for f in json.loads(
        b.ctx.store.get("models/churn/000001/spec.json"))["features"]]
    arrays = [[r[n] for n in names] for r in recs]
    status2, body2, _ = call(srv, "POST", "/v1/models/churn:predict", {"instances": arrays}, token)
    assert status2 == 200 and body2["probabilities"] == body["probabilities"]


def test_auth_refused_without_token(server):
    srv, token, _ = server
    status, body, _ = call(srv, "POST", "/v1/models/churn:predict",
                           {"instances": feature_records(1)})
    assert status == 401 and "authorization" in body["error"]
    status, body, _ = call(srv, "POST", "/v1/models/churn:predict",
                           {"instances": feature_records(1)}, token="mk_wrong")
    assert status == 401 and "not valid" in body["error"]
    assert call(srv, "GET", "/v2/health/ready")[0] == 200  # health stays open


@pytest.mark.parametrize(
    ("instance_patch", "field", "rule"),
    [
        ({"age": "old"}, "age", "expected a number"),
        ({"age": 5}, "age", "below the minimum"),
        ({"region": "atlantis"}, "region", "is not one of"),
        ({"tenure_months": [1, 2]}, "tenure_months", "expected a number"),
        ({"monthly_charges": True}, "monthly_charges", "expected a number"),
    ],
)
def test_bad_request_names_field_and_rule(server, instance_patch, field, rule):
    srv, token, _ = server
    rec = {**feature_records(1)[0], **instance_patch}
    status, body, _ = call(srv, "POST", "/v1/models/churn:predict", {"instances": [rec]}, token)
    assert status == 400
    assert body["field"] == field and rule in body["error"] and field in body["error"]
    assert "Traceback" not in json.dumps(body)


@pytest.mark.parametrize(
    ("raw", "status", "needle"),
    [
        (b"not json", 400, "not valid JSON"),
        (b"[1,2]", 400, "JSON object"),
        (b'{"rows": []}', 400, "instances"),
        (b'{"instances": []}', 400, "non-empty"),
        (b'{"instances": [1e999]}', 400, "instances[0]"),
        (b'{"instances": [{"age": NaN}]}', 400, "JSON"),
    ],
)
def test_malformed_bodies(server, raw, status, needle):
    srv, token, _ = server
    got, body, _ = call(srv, "POST", "/v1/models/churn:predict", raw=raw, token=token)
    assert got == status and needle in body["error"]


def test_oversized_body_is_413(server):
    """The server answers 413 from the content-length alone, without reading the body."""
    import socket

    srv, token, _ = server
    host, port = srv.server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/models/churn:predict HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 7000000\r\n\r\n{\"instances\": ["
        )
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 413")
    assert b"larger than" in body


def test_unknown_model_is_404(server):
    srv, token, _ = server
    status, body, _ = call(srv, "POST", "/v1/models/nope:predict",
                           {"instances": feature_records(1)}, token)
    assert status == 404 and "nope" in body["error"]


def test_v2_metadata_and_infer_by_hand(server):
    """A KServe V2 request built from the Open Inference Protocol docs."""
    srv, token, _ = server
    status, meta, _ = call(srv, "GET", "/v2/models/churn", token=token)
    assert status == 200 and meta["platform"] == "onnxruntime"
    inputs = {i["name"]: i["datatype"] for i in meta["inputs"]}
    assert inputs["age"] == "FP32" and inputs["plan"] == "BYTES"
    recs = feature_records(2)
    req = {"id": "req-42", "inputs": [
        {"name": n, "shape": [2, 1], "datatype": inputs[n], "data": [r[n] for r in recs]}
        for n in inputs]}
    status, body, _ = call(srv, "POST", "/v2/models/churn/infer", req, token)
    assert status == 200, body
    assert body["id"] == "req-42" and body["model_name"] == "churn"
    out = {o["name"]: o for o in body["outputs"]}
    assert out["label"]["shape"] == [2] and out["probabilities"]["shape"] == [2, 2]
    assert len(out["probabilities"]["data"]) == 4
    status, v1, _ = call(srv, "POST", "/v1/models/churn:predict", {"instances": recs}, token)
    assert [round(x, 5) for p in v1["probabilities"] for x in p] == \
        [round(x, 5) for x in out["probabilities"]["data"]]


def test_v2_missing_feature_tensor(server):
    srv, token, _ = server
    req = {"inputs": [{"name": "age", "shape": [1], "datatype": "FP32", "data": [40]}]}
    status, body, _ = call(srv, "POST", "/v2/models/churn/infer", req, token)
    assert status == 400 and "missing tensor" in body["error"]


def test_openapi_served(server):
    srv, _, _ = server
    status, doc, _ = call(srv, "GET", "/openapi.json")
    assert status == 200 and "/v1/models/{model}:predict" in doc["paths"]


def test_curl_v2_request(server):
    srv, token, _ = server
    rec = feature_records(1)[0]
    req = {"inputs": [{"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) or v is None
                       and k in ("plan", "region", "payment") else "FP32", "data": [v]}
                      for k, v in rec.items()]}
    out = subprocess.run(
        ["curl", "-sS", "-X", "POST", f"{srv.url}/v2/models/churn/infer",
         "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json",
         "-d", json.dumps(req), "-w", "\n%{http_code}"],
        capture_output=True, text=True, timeout=30, check=True)
    body, code = out.stdout.rsplit("\n", 1)
    assert code == "200", body
    assert json.loads(body)["outputs"][0]["name"] == "label"


def test_captured_requests_are_batched(server):
    srv, token, b = server
    for _ in range(5):
        call(srv, "POST", "/v1/models/churn:predict", {"instances": feature_records(4)}, token)
    srv.api.service.capture.flush()
    objs = list(b.ctx.store.list("captures/churn/"))
    assert len(objs) == 1
    rows = captured_rows(b.ctx.store.get(objs[0].key))
    assert len(rows) == 20 and {r["version"] for r in rows} == {1}
    assert all("latency_ms" in r and r["id"].startswith(r["request_id"]) for r in rows)


def test_serving_imports_no_sklearn():
    code = (
        "import sys, mlops_kit.core.serving.service, mlops_kit.core.serving.http_api,"
        " mlops_kit.core.serving.predictor;"
        "bad=[m for m in ('sklearn','scipy','skl2onnx','pandas','pyarrow') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_v2_versioned_paths_answer_only_for_registered_versions(server):
    """Pinned routes answer any registered version (issue 23; tests/e2e/test_safe_change.py
    pins a non-champion one); a version that does not exist is a 404 naming it."""
    srv, token, _ = server
    assert call(srv, "GET", "/v2/models/churn/versions/1", token=token)[0] == 200
    status, body, _ = call(srv, "GET", "/v2/models/churn/versions/7", token=token)
    assert status == 404 and body["field"] == "version" and "no version 7" in body["error"]
    status, _, _ = call(srv, "POST", "/v2/models/churn/versions/7/infer", {"inputs": []}, token)
    assert status == 404
