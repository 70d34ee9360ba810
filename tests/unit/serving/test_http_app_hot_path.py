"""Issue 24 (throughput) on the RSGI application's per-request work: what was made cheaper keeps
its guarantees. Request ids stay unique 32-hex ids; the bearer token is checked exactly once
per request (from the head, before the body is read) and still refuses a bad one unread; the
checked-header cache never lets a header through that the check refuses."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from mlops_kit.core.serving.http_api import HttpApi
from mlops_kit.errors import Unauthorized
from mlops_kit.local.http_app import ServeApp, new_request_id, request_id, safe_headers
from tests.support import feature_records


def test_new_request_ids_are_unique_32_hex_and_a_valid_client_id_is_kept():
    ids = [new_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert request_id("order-42.a:b_c") == "order-42.a:b_c"
    assert re.fullmatch(r"[0-9a-f]{32}", request_id("caf\u00e9 1"))


def test_a_refused_header_is_refused_every_time_however_often_it_is_sent(caplog):
    bad = {"content-type": "application/json", "x-bad": "a\r\nset-cookie: x=1"}
    for _ in range(3):
        out = safe_headers(bad, "rid")
        assert out == [("content-type", "application/json"), ("x-request-id", "rid")]
    assert safe_headers({"X-Request-Id": "forged", "Allow": "GET"}, "r") == [
        ("allow", "GET"), ("x-request-id", "r")]


class CountingAuth:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, headers) -> None:
        self.calls += 1
        if headers.get("authorization") != "Bearer good":
            raise Unauthorized("authorization: the token is not valid", field="authorization")


@pytest.mark.parametrize("n_records", [1, 200])  # answered on the loop, scored on the pool
def test_the_token_is_checked_once_per_request_and_a_bad_one_before_the_body(trained,
                                                                             n_records):
    auth = CountingAuth()
    app = ServeApp(HttpApi(trained.service(capture=False), authorize=auth))
    body = json.dumps({"instances": feature_records(n_records)}).encode()
    read = []

    async def read_body() -> bytes:
        read.append(True)
        return body

    def call(token: str):
        headers = {"authorization": f"Bearer {token}", "content-length": str(len(body)),
                   "content-type": "application/json"}
        return asyncio.run(app.serve("POST", "/v1/models/churn:predict", headers, read_body))

    try:
        for _ in range(3):
            resp, _ = call("good")
            assert resp.status == 200 and len(resp.body["predictions"]) == n_records
        assert auth.calls == 3 and len(read) == 3
        resp, _ = call("bad")
        assert resp.status == 401 and auth.calls == 4 and len(read) == 3  # body never read
        # no body: the API checks the token itself (the head check had nothing to guard)
        resp, _ = asyncio.run(app.serve("POST", "/v1/models/churn:predict",
                                        {"authorization": "Bearer bad"}, read_body))
        assert resp.status == 401 and auth.calls == 5
    finally:
        app.close()
