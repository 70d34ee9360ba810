"""Issue 24, cost limit: a single request's cost is its values (rows x features). Past
predictor.MAX_VALUES it is a 413 naming the limit and the model's row allowance, whichever path
decodes it (the exact path, or the champion's compiled decoder once routing is cached), on
both protocols; at the limit it is answered."""

from __future__ import annotations

import json

import pytest

from mlops_kit.core.serving import predictor as predictor_module
from mlops_kit.core.serving.http_api import HttpApi
from tests.support import feature_records

PATH = "/v1/models/churn:predict"


@pytest.fixture
def api(trained, monkeypatch):
    # 7 features: 700 values = 100 rows (the real limit, 1,000,000 values, needs a wide model)
    monkeypatch.setattr(predictor_module, "MAX_VALUES", 700)
    return HttpApi(trained.service(capture=False), authorize=None)


def _v1(api: HttpApi, n: int):
    resp = api.handle("POST", PATH, {"content-type": "application/json"},
                      json.dumps({"instances": feature_records(n)}).encode())
    return resp.status, json.loads(resp.payload())


def test_a_request_over_the_value_limit_is_413_naming_it(api):
    for _ in range(2):  # first: the exact path; then the compiled decoder (routing cached)
        status, out = _v1(api, 101)
        assert status == 413 and out["code"] == "payload_too_large", out
        assert out["field"] == "instances"
        assert out["error"] == ("instances: 101 rows x 7 features = 707 values exceed the "
                                "per-request limit of 700 values (100 rows for this model)")
        status, out = _v1(api, 100)
        assert status == 200 and len(out["predictions"]) == 100


def test_the_value_limit_holds_for_v2_tensors(api):
    records = feature_records(101)
    inputs = [{"name": k, "shape": [101], "datatype": "BYTES" if isinstance(v, str) else "FP32",
               "data": [r[k] for r in records]} for k, v in records[0].items()]
    resp = api.handle("POST", "/v2/models/churn/infer", {"content-type": "application/json"},
                      json.dumps({"inputs": inputs}).encode())
    out = json.loads(resp.payload())
    assert resp.status == 413 and "per-request limit of 700 values" in out["error"], out
