"""serve: API Gateway HTTP API (payload 2.0) and Lambda Function URL events -> HttpApi.

A thin shell: the routes, validation and JSON errors live in mlops_kit.core.serving.http_api, shared
with the local server. The service is built once per warm container; it refreshes the champion
every MLOPSKIT_REFRESH_SECONDS. Auth (IAM or JWT) is enforced by the gateway, not here.
Deliberately no powertools import: cold start matters on this path."""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from typing import Any

import _wiring
from mlops_kit.core.serving.http_api import HttpApi, Response

log = logging.getLogger("mlops_kit.serve")
_api: HttpApi | None = None
_lock = threading.Lock()


def api() -> HttpApi:
    global _api
    if _api is None:
        with _lock:
            if _api is None:
                b = _wiring.backend()
                # the console (/ui/) is imported on its first request, behind the gateway's auth
                _api = HttpApi(b.service(), authorize=None, ui=b.console())
    return _api


def _request(event: dict[str, Any]) -> tuple[str, str, dict[str, str], bytes | None]:
    rc = event.get("requestContext") or {}
    method = (rc.get("http") or {}).get("method") or "GET"
    path = event.get("rawPath") or (rc.get("http") or {}).get("path") or "/"
    stage = rc.get("stage")
    if stage and stage != "$default" and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1:]  # a named stage prefixes rawPath
    headers = dict(event.get("headers") or {})
    if event.get("cookies"):  # payload 2.0 moves request cookies out of the headers
        headers["cookie"] = "; ".join(event["cookies"])
    body = event.get("body")
    if body is not None:
        body = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") \
            else body.encode()
    return method, path, headers, body


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request_id = (event.get("requestContext") or {}).get("requestId")
    try:
        method, path, headers, body = _request(event)
    except (binascii.Error, ValueError):
        resp = Response(400, {"error": "body: invalid base64", "code": "invalid_input"})
    else:
        try:
            service = api()
        except Exception:  # noqa: BLE001 - misconfiguration: log it, never leak it
            log.exception("serve: backend unavailable")
            service = None
        resp = service.handle(method, path, headers, body, request_id=request_id) if service \
            else Response(503, {"error": "service unavailable", "code": "unavailable"})
        _flush_capture_if_due(service)
    headers_out = dict(resp.headers)
    if isinstance(resp.body, dict) and resp.body.get("request_id"):
        headers_out["x-request-id"] = str(resp.body["request_id"])
    out: dict[str, Any] = {"statusCode": resp.status, "headers": headers_out}
    if "set-cookie" in headers_out:  # payload 2.0 answers cookies in their own field
        out["cookies"] = [headers_out.pop("set-cookie")]
    payload = resp.payload()
    try:
        out.update(body=payload.decode(), isBase64Encoded=False)
    except UnicodeDecodeError:
        out.update(body=base64.b64encode(payload).decode(), isBase64Encoded=True)
    return out


def _flush_capture_if_due(service: HttpApi | None) -> None:
    capture = service.service.capture if service else None
    if capture is not None and capture.due():
        try:
            capture.flush()
        except Exception:  # noqa: BLE001 - losing a capture batch must not fail a prediction
            log.exception("serve: capture flush failed")
