"""serve: API Gateway HTTP API (payload 2.0) and Lambda Function URL events -> HttpApi.

A thin shell: the routes, validation and JSON errors live in mlops_kit.core.serving.http_api, shared
with the local server. The service is built once per warm container; it refreshes the champion
every MLOPSKIT_REFRESH_SECONDS. Auth (IAM or JWT) is enforced by the gateway, not here.
Deliberately no powertools import: cold start matters on this path."""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import signal
import threading
from typing import TYPE_CHECKING, Any

# pydantic looks for plugins in every installed distribution's entry points when it builds
# its first model: ~20 ms of CPU, measured; the serve function uses none. Its cold start imports
# no pydantic (light_settings, spec_light), but a setting or spec only pydantic's rules decide
# still builds one. Set PYDANTIC_DISABLE_PLUGINS="" in the function's environment to load them
# (https://docs.pydantic.dev/latest/concepts/plugins/).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
# numpy's OpenBLAS starts a thread per core when numpy is imported, and those threads spin: ~100
# ms of CPU in a forest cold start on a 2-core machine (child CPU 459 -> 358 ms, measured). A
# Lambda function's OS shows 2 vCPUs from 128 to 3,008 MB while its CPU share is throttled
# (third-party measurements: https://github.com/rwnx/lambda-cpuinfo), so that spinning is CPU
# the ~0.6 vCPU serve function's cold start pays. Serving does no BLAS work (onnxruntime has its
# own threads); OPENBLAS_NUM_THREADS set in the function's environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# numpy first, from here: its typing modules (numpy._typing: many Literal and alias
# definitions) then run a few frames deep. Imported from deep inside the kit's import chain
# they landed on a boundary of CPython 3.11's frame-stack chunks, where every call allocates
# and frees a chunk (cpython gh-142183, fixed in 3.13.x/3.14): 1,269 munmap calls in a cold
# start instead of 28, ~30 ms (strace and bench/cold_start.py; the kit's handler imported at
# 0-12 frames of depth stays clean).
import numpy  # noqa: E402,F401

import _wiring  # noqa: E402 - after the lines above
from mlops_kit.core.layout import NAME_PATTERN  # noqa: E402
from mlops_kit.light_settings import read_settings  # noqa: E402

if TYPE_CHECKING:
    from mlops_kit.core.serving.http_api import HttpApi, Response

log = logging.getLogger("mlops_kit.serve")
_api: HttpApi | None = None
_lock = threading.Lock()
# the model a request is for (a hint for the first request's preload; HttpApi routes)
_MODEL_PATH = re.compile(rf"^/v[12]/models/({NAME_PATTERN})(?=[/:]|$)")


def api(path: str | None = None) -> HttpApi:
    """The service, built on the first request. Cold start (issue 28): when that request is
    for a model, its champion's (and challenger's) session starts opening on a background
    thread (Backend.preload: onnxruntime builds it with the GIL released) before the serving
    stack is imported, so the two overlap; the model cache takes the session when it loads
    that version, or loads as it always does."""
    global _api
    if _api is None:
        with _lock:
            if _api is None:
                b = _wiring.backend(read_settings)  # no pydantic (light_settings)
                if path and (model := champion_request(path)):
                    b.preload([model])
                from mlops_kit.core.serving.http_api import HttpApi

                # the console (/ui/) is imported on its first request, behind the gateway's auth
                _api = HttpApi(b.service(), authorize=None, ui=b.console())
    return _api


def champion_request(path: str) -> str | None:
    """The model a request is for when its champion (or challenger) answers; None for a pinned
    version, the health routes and the console."""
    m = _MODEL_PATH.match(path)
    return m.group(1) if m and "/versions/" not in path else None


def _response(status: int, body: dict[str, Any]) -> Response:
    from mlops_kit.core.serving.http_api import Response

    return Response(status, body)


def _request(event: dict[str, Any]) -> tuple[str, str, dict[str, str], bytes | None]:
    rc = event.get("requestContext") or {}
    http = rc.get("http") or {}
    method = http.get("method") or "GET"
    path = event.get("rawPath") or http.get("path") or "/"
    stage = rc.get("stage")
    if stage and stage != "$default" and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1:]  # a named stage prefixes rawPath
    # HttpApi.handle reads the headers into its own lower-cased dict: the event's are copied
    # only to add the cookies
    headers = event.get("headers") or {}
    if event.get("cookies"):  # payload 2.0 moves request cookies out of the headers
        headers = {**headers, "cookie": "; ".join(event["cookies"])}
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
        resp = _response(400, {"error": "body: invalid base64", "code": "invalid_input"})
    else:
        try:
            service = _api if _api is not None else api(path)
        except Exception:  # noqa: BLE001 - misconfiguration: log it, never leak it
            log.exception("serve: backend unavailable")
            service = None
        if service is not None:
            resp = service.handle(method, path, headers, body, request_id=request_id)
            # A due capture flush runs on the buffer's background thread (flush_soon): the
            # response never waits for the store write. Lambda freezes that thread with the
            # environment after the response and it resumes at the next invocation; what is
            # still buffered when the environment is shut down is written by the SIGTERM hook
            # below when Lambda sends SIGTERM (RELIABILITY.md states the promise).
            capture = service.service.capture
            if capture is not None and capture.due():
                capture.flush_soon()
        else:
            resp = _response(503, {"error": "service unavailable", "code": "unavailable"})
    headers_out = dict(resp.headers)
    answer = resp.body
    if isinstance(answer, dict) and (rid := answer.get("request_id")):
        headers_out["x-request-id"] = rid if type(rid) is str else str(rid)
    out: dict[str, Any] = {"statusCode": resp.status, "headers": headers_out}
    if "set-cookie" in headers_out:  # payload 2.0 answers cookies in their own field
        out["cookies"] = [headers_out.pop("set-cookie")]
    payload = resp.payload()
    try:
        out["body"] = payload.decode()
    except UnicodeDecodeError:
        out["body"] = base64.b64encode(payload).decode()
        out["isBase64Encoded"] = True
    else:
        out["isBase64Encoded"] = False
    return out


def drain_captures(timeout: float | None = 5.0) -> int:
    """Wait for a background flush, then write what is still buffered; returns the rows
    written. The SIGTERM hook's work (and the tests' way to read captures at once)."""
    capture = _api.service.capture if _api is not None else None
    if capture is None:
        return 0
    capture.drain(timeout)
    return capture.flush()


def _on_sigterm(signum: int, frame: Any) -> None:
    try:
        rows = drain_captures(0.2)  # Lambda allows the runtime ~300 ms before SIGKILL
        log.info("serve: SIGTERM, %d captured rows written", rows)
    except Exception:  # noqa: BLE001 - shutting down: log, never hang
        log.exception("serve: capture flush at SIGTERM failed")
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    else:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


_previous_sigterm: Any = None


def install_sigterm_flush() -> bool:
    """Flush captures when Lambda shuts the environment down. Lambda sends the runtime SIGTERM
    only when an extension is registered (Lambda Extensions API, shutdown phase: ~300 ms for
    the runtime); without one the environment is stopped unannounced and the rows buffered
    since the last flush are lost (at most capture_max_rows, or capture_max_age_s of traffic).
    Installed on import inside Lambda only (AWS_LAMBDA_RUNTIME_API), from the main thread."""
    global _previous_sigterm
    try:
        _previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        return False
    return True


if os.environ.get("AWS_LAMBDA_RUNTIME_API"):
    install_sigterm_flush()
