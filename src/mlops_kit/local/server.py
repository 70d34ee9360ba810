"""The local HTTPS-contract inference server (plain HTTP on loopback by default): a thin shell
around core.http_api.HttpApi, the same code the cloud `serve` function runs."""

from __future__ import annotations

import json
import logging
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mlops_kit.core.serving.http_api import MAX_BODY_BYTES, HttpApi
from mlops_kit.core.serving.openapi import openapi_document

log = logging.getLogger("mlops_kit.local.server")


def make_server(api: HttpApi, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle + delayed ACK
        # add ~40 ms to every keep-alive request (bench: 182 -> 2,100 req/s).
        disable_nagle_algorithm = True
        server_version = "mlops-kit"
        sys_version = ""

        def log_message(self, fmt, *args):  # request lines only; never bodies or tokens
            log.debug("%s %s", self.command, self.path[:100])

        def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if status != 204:
                self.send_header("content-length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":  # HEAD: the GET answer's headers, never a body
                self.wfile.write(payload)

        def _handle(self) -> None:
            length = self.headers.get("content-length")
            try:
                n = int(length) if length else 0
            except ValueError:
                n = -1
            if n < 0:
                self._send(400, b'{"error":"content-length: invalid"}',
                           {"content-type": "application/json"})
                return
            if n > MAX_BODY_BYTES:
                self.close_connection = True
                self._send(413, json.dumps({"error": f"body: larger than {MAX_BODY_BYTES} bytes",
                                            "code": "payload_too_large"}).encode(),
                           {"content-type": "application/json", "connection": "close"})
                return
            body = self.rfile.read(n) if n else b""
            rid = self.headers.get("x-request-id") or uuid.uuid4().hex
            resp = api.handle(self.command, self.path, dict(self.headers.items()), body,
                              request_id=rid)
            self._send(resp.status, resp.payload(), {**resp.headers, "x-request-id": rid})

        # every method reaches the API, which answers JSON (405 + Allow, 204 for OPTIONS);
        # the stdlib's default for the rest is a 501 with an HTML page
        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    server = _Server((host, port), Handler)
    server.daemon_threads = True
    return server


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client closing or resetting its keep-alive connection is ordinary (load tools do it
        at the end of every run): log it, never print a traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("connection from %s ended: %s", client_address[0], exc)
            return
        log.exception("error serving a connection from %s", client_address[0])


# A thread waiting for the GIL gets it when the running thread blocks, or after the switch
# interval (5 ms by default) while that thread runs Python: a request arriving during a
# capture flush or another request's Python work waited up to 5 ms per hand-over. 0.5 ms keeps
# that wait out of the tail at a throughput cost within noise (bench/http_load.py).
SWITCH_INTERVAL_S = 0.0005


class ServerThread:
    """Runs a server in the background (used by the demo and the tests) plus capture flushing.
    Starting it sets this interpreter's GIL switch interval (switch_interval_s; None leaves
    it alone)."""

    def __init__(self, api: HttpApi, host: str = "127.0.0.1", port: int = 0, *,
                 switch_interval_s: float | None = SWITCH_INTERVAL_S) -> None:
        self.switch_interval_s = switch_interval_s
        self.api = api
        self.server = make_server(api, host, port)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self.server.serve_forever, daemon=True),
            threading.Thread(target=self._flush_loop, daemon=True),
        ]

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _flush_loop(self) -> None:
        capture = self.api.service.capture
        while not self._stop.wait(1.0):
            if capture is not None and capture.due():
                try:
                    capture.flush()
                except Exception:  # noqa: BLE001 - capture must never stop serving
                    log.exception("capture flush failed")

    def start(self) -> ServerThread:
        if self.switch_interval_s is not None:
            sys.setswitchinterval(self.switch_interval_s)
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        if self.api.service.capture is not None:
            self.api.service.capture.flush()


def build_api(backend, *, auth: bool = True, workspace=None) -> HttpApi:
    from mlops_kit.local.auth import BearerAuth

    authorize = BearerAuth(workspace) if auth else None
    return HttpApi(backend.service(), authorize=authorize, openapi=openapi_document,
                   ui=backend.console(authorize))
