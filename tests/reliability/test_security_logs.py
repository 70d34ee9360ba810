"""No secrets or request payloads in logs; auth refused without credentials; the token is
stored hashed. Logs are captured at DEBUG from every logger while a token-protected server
answers good, bad and failing requests carrying distinctive values."""

from __future__ import annotations

import http.client
import json
import logging
from pathlib import Path

import pytest

from mlops_kit.local.auth import TOKEN_FILE
from tests.support import feature_records

SECRET_CATEGORY = "zq-payload-marker-7731"  # a bad category value (echoed to the client only)
SECRET_NUMBER = 31337.4242  # out of range for monthly_charges


def _call(srv, method, path, body: bytes | None, headers: dict) -> tuple[int, dict, dict]:
    host, port = srv.server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else {}, dict(resp.getheaders())
    finally:
        conn.close()


@pytest.fixture
def debug_logs(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("mlops_kit", "mlops_kit.local.server", "mlops_kit.http", "mlops_kit.serving"):
        caplog.set_level(logging.DEBUG, logger=name)  # restored after the test
    return caplog


def test_no_token_or_payload_in_logs_while_serving(server, debug_logs, monkeypatch):
    srv, token, backend = server
    auth = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    rec = feature_records(1)[0]
    good = {**rec, "monthly_charges": 77.7125}
    requests = [
        ("POST", "/v1/models/churn:predict", {"instances": [good]}, 200),
        ("POST", "/v1/models/churn:predict", {"instances": [{**rec, "plan": SECRET_CATEGORY}]},
         400),
        ("POST", "/v1/models/churn:predict", {"instances": [{**rec,
                                                             "monthly_charges": SECRET_NUMBER}]},
         400),
        ("POST", "/v2/models/churn/infer", {"inputs": [{"name": "plan", "shape": [1],
                                                        "datatype": "BYTES",
                                                        "data": [SECRET_CATEGORY]}]}, 400),
        ("POST", "/v1/models/nope:predict", {"instances": [{"plan": SECRET_CATEGORY}]}, 404),
    ]
    for method, path, body, expected in requests:
        status, payload, _ = _call(srv, method, path, json.dumps(body).encode(), auth)
        assert status == expected, payload
    # a request that fails inside the service (an internal error) must not log its payload
    service = srv.api.service

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "predict", broken)
    status, payload, _ = _call(srv, "POST", "/v1/models/churn:predict",
                               json.dumps({"instances": [{**rec, "plan": SECRET_CATEGORY}]})
                               .encode(), auth)
    assert status == 500 and payload == {"error": "internal error", "code": "internal_error"}
    assert "boom" not in json.dumps(payload) and "Traceback" not in json.dumps(payload)
    # a wrong token is refused and not logged either
    wrong = "mk_" + "w" * 43
    status, _, _ = _call(srv, "POST", "/v1/models/churn:predict", b"{}",
                         {"authorization": f"Bearer {wrong}"})
    assert status == 401
    text = debug_logs.text + "".join(str(r.args) for r in debug_logs.records)
    assert debug_logs.records, "nothing was logged: the check below would prove nothing"
    assert any(r.levelno >= logging.ERROR for r in debug_logs.records)  # the 500 was logged
    for needle in (token, token[3:], wrong, SECRET_CATEGORY, str(SECRET_NUMBER), "77.7125"):
        assert needle not in text, needle


def test_token_is_stored_hashed_and_never_on_disk_in_clear(server):
    srv, token, backend = server
    ws = Path(backend.settings.workspace)
    stored = json.loads((ws / TOKEN_FILE).read_text())
    assert set(stored) == {"sha256", "scheme"} and token not in json.dumps(stored)
    assert ((ws / TOKEN_FILE).stat().st_mode & 0o077) == 0  # owner-only
    for path in ws.rglob("*"):
        if path.is_file() and path.stat().st_size < (8 << 20):
            assert token.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("headers", [
    {},
    {"authorization": ""},
    {"authorization": "Bearer"},
    {"authorization": "Bearer "},
    {"authorization": "Basic dXNlcjpwYXNz"},
    {"authorization": "Bearer mk_not-the-token"},
    {"authorization": "Token {token}"},
    {"authorization": "Bearer {token}x"},
    {"authorization": "Bearer {token_prefix}"},
    {"x-api-key": "{token}"},
])
@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v1/models/churn:predict"), ("POST", "/v2/models/churn/infer"),
    ("GET", "/v2/models/churn"), ("GET", "/v1/models/churn"), ("GET", "/v2/models/churn/ready"),
])
def test_auth_refused_without_valid_credentials(server, headers, method, path):
    srv, token, _ = server
    h = {k: v.format(token=token, token_prefix=token[:-1]) for k, v in headers.items()}
    body = json.dumps({"instances": feature_records(1)}).encode() if method == "POST" else None
    status, payload, _ = _call(srv, method, path, body, h)
    assert status == 401, payload
    assert payload["code"] == "unauthorized" and "authorization" in payload["error"]
    assert "predictions" not in payload and "features" not in payload


def test_only_health_and_the_document_are_open(server):
    srv, token, _ = server
    for path in ("/v2/health/ready", "/v2/health/live", "/openapi.json"):
        assert _call(srv, "GET", path, None, {})[0] == 200
    assert _call(srv, "GET", "/v2/models/churn", None,
                 {"authorization": f"Bearer {token}"})[0] == 200


def test_errors_never_leak_internals(served, monkeypatch):
    backend, api, token = served

    def broken(*a, **k):
        raise OSError("/secret/internal/path/registry.db is locked")

    monkeypatch.setattr(api.service.registry, "get_alias", broken)
    api.service.invalidate()
    resp = api.handle("POST", "/v1/models/churn:predict", {"authorization": f"Bearer {token}"},
                      json.dumps({"instances": feature_records(1)}).encode())
    assert resp.status == 500
    assert resp.body == {"error": "internal error", "code": "internal_error"}
