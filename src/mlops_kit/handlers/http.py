"""The serve shell: one HttpApi per warm instance, the same routes, validation and JSON errors
as the local server and the AWS serve function (core/serving/http_api). A cloud's HTTP
trigger turns its request into (method, path, headers, body) and the Response back.

Auth is the platform's (API Gateway's JWT/IAM authorizer on AWS, App Service authentication
on Azure); `authorize` is an extra check the shell may add (e.g. that the platform did
authenticate the caller)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from mlops_kit.bootstrap import Backend
from mlops_kit.core.serving.http_api import HttpApi, Response

log = logging.getLogger("mlops_kit.serve")


class HttpShell:
    def __init__(self, backend: Callable[[], Backend], *,
                 authorize: Callable[[Mapping[str, str]], None] | None = None,
                 console: bool = False) -> None:
        self._backend = backend
        self._authorize = authorize
        self._console = console
        self._api: HttpApi | None = None
        self._lock = threading.Lock()

    def api(self) -> HttpApi:
        if self._api is None:
            with self._lock:
                if self._api is None:
                    b = self._backend()
                    self._api = HttpApi(b.service(), authorize=self._authorize,
                                        ui=self._ui(b) if self._console else None)
        return self._api

    def _ui(self, backend: Backend) -> Callable:
        """The read-only console (/ui/), built on its first request. The platform authenticated
        the caller (the console's own sign-in is for the local server); `authorize` is checked
        first, as for the API."""
        console, authorize = backend.console(), self._authorize

        def handle(method: str, path: str, headers: Mapping[str, str], body: bytes | None):
            if authorize is not None:
                authorize(headers)
            return console(method, path, headers, body)

        return handle

    def reset(self) -> None:
        with self._lock:
            self._api = None

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None,
               *, request_id: str | None = None) -> Response:
        try:
            api: HttpApi | None = self.api()
        except Exception:  # noqa: BLE001 - misconfiguration: log it, never leak it
            log.exception("serve: backend unavailable")
            api = None
        if api is None:
            resp = Response(503, {"error": "service unavailable", "code": "unavailable"})
        else:
            resp = api.handle(method, path, headers, body, request_id=request_id)
            self._flush_capture_if_due(api)
        if isinstance(resp.body, dict) and resp.body.get("request_id"):
            resp.headers = {**resp.headers, "x-request-id": str(resp.body["request_id"])}
        return resp

    @staticmethod
    def _flush_capture_if_due(api: HttpApi) -> None:
        """On the buffer's background thread: the response never waits for the write."""
        capture = api.service.capture
        if capture is not None and capture.due():
            capture.flush_soon()

    def drain_captures(self, timeout: float | None = 5.0) -> int:
        """Wait for a background flush, then write what is still buffered (at shutdown, and
        for tests that read the captures at once); returns the rows written."""
        capture = self._api.service.capture if self._api is not None else None
        if capture is None:
            return 0
        capture.drain(timeout)
        return capture.flush()
