"""The Open Inference Protocol for the new feature types, spoken by tritonclient.http over a
real socket: GET /v2/models/{m} declares a boolean input BOOL and text / datetime inputs
BYTES (the protocol's tensor datatypes:
https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol, "Tensor
Data Types"), and a request built from that metadata -- BOOL as binary or JSON true/false,
dates and text as BYTES -- predicts what V1 predicts for the same raw record."""

from __future__ import annotations

import http.client
import json

import numpy as np
import pytest
import tritonclient.http as triton

from mlops_kit.local.auth import ensure_token
from mlops_kit.local.server import ServerThread, build_api
from mlops_kit.local.worker import put_object, run_once
from tests.support import apply_spec, make_backend

SPEC = {
    "name": "mixed", "task": "binary_classification", "target": "y",
    "features": [
        {"name": "x", "type": "numeric"},
        {"name": "flag", "type": "boolean"},
        {"name": "since", "type": "datetime"},
        {"name": "note", "type": "text", "nullable": True},
        {"name": "cid", "role": "id"},
    ],
    "estimator": {"kind": "logistic_regression"},
    "validation": {"min_rows": 50},
}
WORDS = ["slow", "great", "app", "crash", "bill"]


def rows(n, seed):
    rng = np.random.default_rng(seed)
    return [{"cid": f"C{i}", "x": round(float(rng.normal()), 4),
             "flag": bool(rng.random() < 0.4),
             "since": f"20{rng.integers(18, 24)}-{rng.integers(1, 13):02d}-"
                      f"{rng.integers(1, 29):02d}T{rng.integers(0, 24):02d}:30:00+02:00",
             "note": " ".join(rng.choice(WORDS, rng.integers(1, 5)))} for i in range(n)]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    b = make_backend(tmp_path_factory.mktemp("v2types") / "ws")
    apply_spec(b, SPEC)
    train = rows(400, 1)
    lines = ["cid,x,flag,since,note,y"] + [
        f'{r["cid"]},{r["x"]},{"yes" if r["flag"] else "no"},{r["since"]},"{r["note"]}",'
        f'{int(r["x"] + (1 if r["flag"] else -1) > 0)}' for r in train]
    put_object(b, "datasets/mixed/one.csv", ("\n".join(lines) + "\n").encode())
    assert run_once(b)[-1]["status"] == "registered"
    token = ensure_token(b.settings.workspace)
    srv = ServerThread(build_api(b, auth=True, workspace=b.settings.workspace)).start()
    host, port = srv.server.server_address[:2]
    client = triton.InferenceServerClient(url=f"{host}:{port}")
    yield srv, client, {"Authorization": f"Bearer {token}"}
    client.close()
    srv.stop()


def v1(srv, headers, records):
    host, port = srv.server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("POST", "/v1/models/mixed:predict", body=json.dumps({"instances": records}),
                 headers={"content-type": "application/json", **headers})
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body


def inputs(meta, records, binary=True):
    """One InferInput per declared input, typed as the metadata says."""
    out = []
    for spec in meta["inputs"]:
        name, datatype = spec["name"], spec["datatype"]
        dtype = {"FP32": np.float32, "BOOL": np.bool_}.get(datatype, object)
        arr = np.array([r[name] for r in records], dtype=dtype).reshape(-1, 1)
        t = triton.InferInput(name, list(arr.shape), datatype)
        t.set_data_from_numpy(arr, binary_data=binary)
        out.append(t)
    return out


def test_metadata_declares_bool_and_bytes(served):
    _, client, headers = served
    meta = client.get_model_metadata("mixed", headers=headers)
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        "x": "FP32", "flag": "BOOL", "since": "BYTES", "note": "BYTES"}


@pytest.mark.parametrize("binary", [True, False])
def test_bool_and_bytes_inputs_predict_as_v1(served, binary):
    srv, client, headers = served
    meta = client.get_model_metadata("mixed", headers=headers)
    records = [{k: v for k, v in r.items() if k != "cid"} for r in rows(12, 9)]
    records[0]["note"] = ""  # empty text: no terms
    records[1]["since"] = "2024-02-29T23:30:00-01:00"  # a leap day, an offset
    # a copy: tritonclient writes Inference-Header-Content-Length into the dict it is given
    result = client.infer("mixed", inputs(meta, records, binary), headers=dict(headers))
    expected = v1(srv, headers, records)
    assert result.as_numpy("label").tolist() == expected["predictions"]
    assert np.allclose(result.as_numpy("probabilities"), expected["probabilities"], atol=1e-6)
    # the spellings a boolean may take in V1 predict the same
    spelled = [{**r, "flag": "yes" if r["flag"] else "no"} for r in records]
    assert v1(srv, headers, spelled)["predictions"] == expected["predictions"]
