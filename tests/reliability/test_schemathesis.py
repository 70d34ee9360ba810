"""schemathesis against the OpenAPI document the server actually serves at /openapi.json:
generated requests (valid and invalid) never get a 5xx, and every response conforms to the
document (status codes, content type, response schema). Unauthenticated calls are refused."""

from __future__ import annotations

import json
import urllib.request

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import examples, feature_records  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection, ignored_auth]


@pytest.fixture(scope="module")
def api_schema(server):
    srv, _, _ = server
    with urllib.request.urlopen(f"{srv.url}/openapi.json", timeout=30) as resp:  # noqa: S310
        assert resp.status == 200
        document = json.loads(resp.read())
    assert document["openapi"].startswith("3.") and "/v1/models/{model}:predict" in document[
        "paths"]
    return schemathesis.openapi.from_dict(document)


OPERATIONS = [("POST", "/v1/models/{model}:predict"), ("POST", "/v2/models/{model}/infer"),
              ("GET", "/v2/models/{model}"), ("GET", "/v2/health/ready")]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


# (The schemathesis pytest plugin's lazy `from_fixture` does not run on pytest 9, so cases are
# drawn from each operation's hypothesis strategy inside an ordinary @given test.)
# health takes no input at all: there is no schema-violating request to make
CASES = [(m, p, mode) for m, p in OPERATIONS for mode in MODES
         if not (p == "/v2/health/ready" and mode is GenerationMode.NEGATIVE)]


@pytest.mark.parametrize(("method", "path", "mode"), CASES,
                         ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES])
@settings(max_examples=examples(40), deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_served_openapi_document_holds(api_schema, server, method, path, mode, data):
    srv, token, _ = server
    case = data.draw(api_schema[path][method].as_strategy(generation_mode=mode))
    if mode is GenerationMode.POSITIVE and "model" in (case.path_parameters or {}) and \
            data.draw(st.booleans()):
        case.path_parameters["model"] = "churn"  # half the valid cases hit the real model
    case.call_and_validate(base_url=srv.url, headers={"Authorization": f"Bearer {token}"},
                           checks=CHECKS)


def test_the_document_lists_every_served_route(api_schema):
    assert {(m, p) for m, p in OPERATIONS} <= {
        (op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}


def test_a_valid_request_from_the_document_is_answered(server):
    """The happy path the document describes (records shaped like its example) returns 200 and
    a body matching the documented response schema."""
    import jsonschema

    srv, token, _ = server
    with urllib.request.urlopen(f"{srv.url}/openapi.json", timeout=30) as resp:  # noqa: S310
        doc = json.loads(resp.read())
    req = urllib.request.Request(
        f"{srv.url}/v1/models/churn:predict", method="POST",
        data=json.dumps({"instances": feature_records(3)}).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
        body = json.loads(resp.read())
    op = doc["paths"]["/v1/models/{model}:predict"]["post"]
    jsonschema.validate(body, op["responses"]["200"]["content"]["application/json"]["schema"])
    assert len(body["predictions"]) == 3
