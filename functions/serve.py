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
                _api = HttpApi(_wiring.backend().service(), authorize=None)
    return _api


def _request(event: dict[str, Any]) -> tuple[str, str, dict[str, str], bytes | None]:
    rc = event.get("requestContext") or {}
    method = (rc.get("http") or {}).get("method") or "GET"
    path = event.get("rawPath") or (rc.get("http") or {}).get("path") or "/"
    stage = rc.get("stage")
    if stage and stage != "$default" and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1:]  # a named stage prefixes rawPath
    body = event.get("body")
    if body is not None:
        body = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") \
            else body.encode()
    return method, path, event.get("headers") or {}, body


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
    payload, headers = resp.payload()
    headers_out = dict(headers)
    if isinstance(resp.body, dict) and resp.body.get("request_id"):
        headers_out["x-request-id"] = str(resp.body["request_id"])
    if resp.binary is not None:  # V2 binary tensors: API Gateway / Function URLs want base64
        return {"statusCode": resp.status, "headers": headers_out,
                "body": base64.b64encode(payload).decode(), "isBase64Encoded": True}
    return {"statusCode": resp.status, "headers": headers_out,
            "body": payload.decode(), "isBase64Encoded": False}


def _flush_capture_if_due(service: HttpApi | None) -> None:
    capture = service.service.capture if service else None
    if capture is not None and capture.due():
        try:
            capture.flush()
        except Exception:  # noqa: BLE001 - losing a capture batch must not fail a prediction
            log.exception("serve: capture flush failed")
