"""Open Inference Protocol binary tensors over a real socket, spoken by tritonclient.http with
its defaults (binary inputs; binary outputs when none are named), against the local server."""

from __future__ import annotations

import http.client
import json
import struct

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from mlops_kit.local.auth import ensure_token
from mlops_kit.local.server import ServerThread, build_api
from tests.support import feature_records, store_captures


@pytest.fixture
def served(trained):
    token = ensure_token(trained.settings.workspace)
    srv = ServerThread(build_api(trained, auth=True, workspace=trained.settings.workspace)).start()
    host, port = srv.server.server_address[:2]
    client = triton.InferenceServerClient(url=f"{host}:{port}")
    yield srv, client, {"Authorization": f"Bearer {token}"}, trained
    client.close()
    srv.stop()


def spec_features(b) -> list[dict]:
    return json.loads(b.ctx.store.get("models/churn/000001/spec.json"))["features"]


def inputs_for(b, records, numeric_dtype=np.float32, datatype="FP32"):
    """One InferInput per feature, shape [N, 1], set from numpy with the client's default
    (binary_data=True)."""
    out = []
    for f in spec_features(b):
        values = [r[f["name"]] for r in records]
        if f["type"] == "numeric":
            arr = np.array([np.nan if v is None else v for v in values],
                           dtype=numeric_dtype).reshape(-1, 1)
            t = triton.InferInput(f["name"], list(arr.shape), datatype)
        else:
            arr = np.array(["" if v is None else v for v in values], dtype=object).reshape(-1, 1)
            t = triton.InferInput(f["name"], list(arr.shape), "BYTES")
        t.set_data_from_numpy(arr)
        out.append(t)
    return out


def v1(srv, headers, records):
    host, port = srv.server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("POST", "/v1/models/churn:predict", body=json.dumps({"instances": records}),
                 headers={"content-type": "application/json", **headers})
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body


def clean(records):
    """Records the binary path can carry: numeric missing goes as NaN, which validation rejects
    for non-nullable features; keep rows without missing values."""
    return [r for r in records if all(v is not None for v in r.values())]


def test_tritonclient_defaults_binary_both_ways(served):
    srv, client, headers, b = served
    assert client.is_server_live(headers=headers) and client.is_server_ready(headers=headers)
    assert client.is_model_ready("churn", headers=headers)
    meta = client.get_model_metadata("churn", headers=headers)
    assert [i["name"] for i in meta["inputs"]] == [f["name"] for f in spec_features(b)]
    records = clean(feature_records(40, seed=5))[:25]
    result = client.infer("churn", inputs_for(b, records), headers=headers, request_id="tc-1")
    response = result.get_response()
    # binary outputs: no JSON data, sizes in parameters
    for out in response["outputs"]:
        assert "data" not in out and out["parameters"]["binary_data_size"] > 0
    labels, proba = result.as_numpy("label"), result.as_numpy("probabilities")
    assert labels.dtype == np.int64 and labels.shape == (25,)
    assert proba.dtype == np.float32 and proba.shape == (25, 2)
    expected = v1(srv, headers, records)
    assert labels.tolist() == expected["predictions"]
    assert np.allclose(proba, expected["probabilities"], atol=1e-6)
    assert response["id"] == "tc-1" and response["model_version"] == "1"
    srv.api.service.capture.flush()
    captured = [r for r in store_captures(b.ctx.store, "captures/churn/")
                if r["request_id"] == "tc-1"]
    assert [r["id"] for r in captured] == [f"tc-1#{i}" for i in range(25)]


@pytest.mark.parametrize(("dtype", "datatype"), [(np.float64, "FP64"), (np.int64, "INT64")])
def test_fp64_and_int64_inputs(served, dtype, datatype):
    srv, client, headers, b = served
    records = clean(feature_records(30, seed=9))[:10]
    for r in records:  # integral values, so INT64 carries the same numbers
        for f in spec_features(b):
            if f["type"] == "numeric":
                r[f["name"]] = int(r[f["name"]])
    result = client.infer("churn", inputs_for(b, records, dtype, datatype), headers=headers)
    assert result.as_numpy("label").tolist() == v1(srv, headers, records)["predictions"]


def test_requested_outputs_json_and_binary_mixed(served):
    srv, client, headers, b = served
    records = clean(feature_records(20, seed=2))[:4]
    outputs = [triton.InferRequestedOutput("probabilities"),  # binary (the default)
               triton.InferRequestedOutput("label", binary_data=False)]
    result = client.infer("churn", inputs_for(b, records), outputs=outputs, headers=headers)
    resp = result.get_response()
    assert [o["name"] for o in resp["outputs"]] == ["probabilities", "label"]
    assert resp["outputs"][1]["data"] == v1(srv, headers, records)["predictions"]
    assert result.as_numpy("probabilities").shape == (4, 2)


def test_json_inputs_still_answer_json(served):
    srv, client, headers, b = served
    records = clean(feature_records(20, seed=4))[:3]
    ins = inputs_for(b, records)
    for t, f in zip(ins, spec_features(b), strict=True):
        arr = np.array([r[f["name"]] for r in records],
                       dtype=np.float32 if f["type"] == "numeric" else object).reshape(-1, 1)
        t.set_data_from_numpy(arr, binary_data=False)
    result = client.infer("churn", ins, outputs=[triton.InferRequestedOutput(
        "label", binary_data=False)], headers=headers)
    assert result.as_numpy("label").tolist() == v1(srv, headers, records)["predictions"]


def test_bad_binary_requests_are_400_naming_the_problem(served):
    srv, client, headers, b = served
    host, port = srv.server.server_address[:2]
    feats = spec_features(b)
    rec = clean(feature_records(10, seed=1))[0]
    inputs, raw = [], b""
    for f in feats:
        if f["type"] == "numeric":
            data = struct.pack("<f", rec[f["name"]])
            inputs.append({"name": f["name"], "shape": [1, 1], "datatype": "FP32",
                           "parameters": {"binary_data_size": len(data)}})
        else:
            v = rec[f["name"]].encode()
            data = struct.pack("<I", len(v)) + v
            inputs.append({"name": f["name"], "shape": [1, 1], "datatype": "BYTES",
                           "parameters": {"binary_data_size": len(data)}})
        raw += data
    head = json.dumps({"inputs": inputs}).encode()

    def post(body, length):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request("POST", "/v2/models/churn/infer", body=body, headers={
            **headers, "Inference-Header-Content-Length": str(length)})
        resp = conn.getresponse()
        out = resp.status, resp.read(), dict(resp.getheaders())
        conn.close()
        return out

    status, body, hdrs = post(head + raw, len(head))
    assert status == 200 and hdrs["content-type"] == "application/json", body
    assert json.loads(body)["outputs"][0]["data"]  # no binary asked for: JSON answers
    status, body, _ = post(head + raw[:-1], len(head))
    assert status == 400 and "ends early" in json.loads(body)["error"]
    status, body, _ = post(head + raw + b"xx", len(head))
    assert status == 400 and "2 bytes of binary data no input claims" in json.loads(body)["error"]
    status, body, _ = post(head + raw, len(head) + 10**6)
    assert status == 400 and "Inference-Header-Content-Length" in json.loads(body)["error"]
    bad = json.dumps({"inputs": inputs, "outputs": [{"name": "nope"}]}).encode()
    status, body, _ = post(bad + raw, len(bad))
    assert status == 400 and "outputs[0].name" in json.loads(body)["error"]
    with pytest.raises(InferenceServerException) as err:  # through the client: a clear 400
        client.infer("churn", inputs_for(b, [rec])[1:], headers=headers)
    assert err.value.status() == "400" and "tenure_months" in err.value.message()
