"""Name checks that cannot be fooled (issue 24): a `$` in re.match also matches before a final
newline, so every validator is a fullmatch (a model named "nl\\n" was registered and served
404; `next=models/churn%0A` ended the sign-in redirect's headers early). A spec that gives a
key twice, or a NaN bound, is refused instead of read by guesswork."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from mlops_kit.core import layout
from mlops_kit.core.layout import check_name
from mlops_kit.core.spec import load_spec_bytes
from mlops_kit.errors import InvalidName, SpecError
from tests.reliability.test_http_server import _raw, _status
from tests.support import CHURN_SPEC


@pytest.mark.parametrize("name", ["nl\n", "churn\n", "churn\r\n"])
def test_a_trailing_newline_is_not_a_name(name):
    with pytest.raises(InvalidName):
        check_name(name)
    with pytest.raises(InvalidName):
        layout.spec_keys(name)
    with pytest.raises(SpecError):
        load_spec_bytes(json.dumps({**CHURN_SPEC, "name": name}).encode())


def test_the_sign_in_redirect_never_takes_a_newline(served):
    _, api, token = served
    body = urlencode({"token": token, "next": "models/churn\nSet-Cookie: x=1"}).encode()
    resp = api.handle("POST", "/ui/login", {"content-type": "application/x-www-form-urlencoded"},
                      body)
    assert resp.status == 303 and resp.headers["location"] == "./"
    body = urlencode({"token": token, "next": "models/churn"}).encode()
    ok = api.handle("POST", "/ui/login", {"content-type": "application/x-www-form-urlencoded"},
                    body)
    assert ok.headers["location"] == "models/churn"


@pytest.mark.parametrize("path", ["/v1/models/churn:predict%0A", "/v1/models/churn%0A:predict",
                                  "/v2/models/churn%00/infer", "/v1/models/churn:predict%0D%0A"])
def test_encoded_control_characters_in_a_path_are_404_over_a_socket(served, path):
    from mlops_kit.local.server import ServerThread

    _, api, token = served
    srv = ServerThread(api).start()
    try:
        body = b'{"instances": [{}]}'
        resp = _raw(srv, (f"POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n"
                          f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                    + body)
        assert _status(resp) == 404, resp[:300]
    finally:
        srv.stop()


SPEC_YAML = """name: churn
task: binary_classification
target: churned
estimator: {kind: logistic_regression, params: {}}
features:
  - {name: age, type: numeric, min: 0, max: 120}
  - {name: plan, type: categorical}
"""


@pytest.mark.parametrize("raw", [
    SPEC_YAML + "task: regression\n",  # a top-level key twice
    SPEC_YAML.replace("min: 0, max: 120", "min: 0, min: 5, max: 120"),  # nested
    json.dumps(CHURN_SPEC)[:-1] + ', "task": "regression"}',  # JSON
], ids=["yaml top level", "yaml nested", "json"])
def test_a_key_given_twice_is_refused(raw):
    with pytest.raises(SpecError) as info:
        load_spec_bytes(raw.encode())
    assert "appears twice" in info.value.message


def test_the_same_spec_without_duplicates_loads_and_merge_keys_still_work():
    assert load_spec_bytes(SPEC_YAML.encode()).name == "churn"
    merged = SPEC_YAML.replace(
        "features:\n", "base: &b {type: numeric, min: 0}\nfeatures:\n").replace(
        "  - {name: age, type: numeric, min: 0, max: 120}",
        "  - {<<: *b, name: age, max: 120}")
    with pytest.raises(SpecError) as info:  # `base` is not a spec field: only that complaint
        load_spec_bytes(merged.encode())
    assert "base" in info.value.message and "twice" not in info.value.message


@pytest.mark.parametrize("raw", [
    SPEC_YAML.replace("min: 0", "min: .nan"),
    SPEC_YAML.replace("max: 120", "max: .NaN"),
    json.dumps({**CHURN_SPEC, "features": [{"name": "age", "type": "numeric", "min": 0,
                                            "max": float("nan")}]}),
], ids=["yaml min", "yaml max", "json max"])
def test_a_nan_bound_is_refused(raw):
    with pytest.raises(SpecError) as info:
        load_spec_bytes(raw.encode())
    assert "NaN" in info.value.message and ("min" in info.value.message
                                            or "max" in info.value.message)


@pytest.mark.parametrize("path", ["/v1/models/churn\n", "/v2/models/churn/infer\n",
                                  "/v1/models/churn:predict\n", "/v2/models/churn/ready\n",
                                  "/v2/models/churn/versions/1\n"])
def test_the_router_itself_never_takes_a_trailing_newline(served, path):
    """Not only the server's 404 for encoded controls: HttpApi's routes are fullmatches too
    (the Lambda and Azure shells hand it decoded paths)."""
    _, api, token = served
    resp = api.handle("POST" if path.endswith(("predict\n", "infer\n")) else "GET", path,
                      {"authorization": f"Bearer {token}"}, b'{"instances": [{}]}')
    assert resp.status == 404, (path, resp.status)
