"""The local HTTPS-contract inference server (plain HTTP on loopback by default): a thin shell
around core.http_api.HttpApi, the same code the cloud `serve` function runs.

One asyncio event loop serves every connection (HTTP/1.1 keep-alive, pipelining, `Expect:
100-continue`); requests are answered one at a time on the loop's thread. A request is ~0.1 ms
of Python, so a thread per connection (the stdlib's ThreadingHTTPServer, used before) gained
nothing but GIL hand-overs: at 4 connections it served 0.8x the requests of a bare uvicorn
server with 2x its p99 (bench/http_load.py). Capture flushes run on a second thread."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import threading
import uuid
from http.client import responses as REASONS
from typing import Any

from mlops_kit.core.serving.http_api import MAX_BODY_BYTES, HttpApi
from mlops_kit.core.serving.openapi import openapi_document

log = logging.getLogger("mlops_kit.local.server")

MAX_HEAD_BYTES = 64 * 1024  # request line + headers
SERVER = b"mlops-kit"
_JSON = {"content-type": "application/json"}


class _Connection(asyncio.Protocol):
    """One client connection: parse requests from the byte stream, answer each in order."""

    def __init__(self, api: Any, open_: set[_Connection]) -> None:
        self.api = api
        self.open = open_
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.continued = False  # 100 Continue already sent for the request being read
        self.closed = False
        self.paused = False  # the client is not reading our answers: neither do we

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.open.discard(self)
        if exc is not None:  # a client resetting its keep-alive connection is ordinary
            log.debug("connection ended: %s", exc)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._answer()

    def _answer(self) -> None:
        while not self.closed and not self.paused and self._one():
            pass

    # Flow control: a client that pipelines requests without reading the answers fills the
    # transport's write buffer; past its high-water mark, stop reading and answering until
    # it drains, so one connection can never make the server buffer without bound.
    def pause_writing(self) -> None:
        self.paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()
        self._answer()

    def _one(self) -> bool:
        """Answer the next complete request in the buffer; False when it needs more bytes."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEAD_BYTES:
                self._fail(431, "request headers: larger than 65536 bytes")
            return False
        try:
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError(version)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep or not name or name != name.strip():
                    raise ValueError(line)
                headers[name.lower()] = value.strip()
        except ValueError:
            self._fail(400, "request: malformed request line or header")
            return False
        if "transfer-encoding" in headers:
            self._fail(411, "transfer-encoding: not supported, send a content-length")
            return False
        length = headers.get("content-length", "0") or "0"
        n = int(length) if length.isdigit() else -1
        if n < 0:
            self._fail(400, "content-length: invalid")
            return False
        if n > MAX_BODY_BYTES:  # from the header alone: the body is never read
            self._fail(413, f"body: larger than {MAX_BODY_BYTES} bytes", "payload_too_large")
            return False
        start = end + 4
        if len(self.buf) < start + n:
            if not self.continued and headers.get("expect", "").lower() == "100-continue":
                self.continued = True
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return False
        body = bytes(self.buf[start:start + n])
        del self.buf[:start + n]
        self.continued = False
        conn = headers.get("connection", "").lower()
        keep = conn != "close" and (version == "HTTP/1.1" or conn == "keep-alive")
        rid = headers.get("x-request-id") or uuid.uuid4().hex
        try:
            resp = self.api.handle(method, target, headers, body, request_id=rid)
            status, payload, extra = resp.status, resp.payload(), resp.headers
        except Exception:  # noqa: BLE001 - the API answers its own errors; this is a bug
            log.exception("error answering %s %s", method, target[:100])
            status, payload, extra = 500, b'{"error":"internal error"}', _JSON
        log.debug("%s %s %s", method, target[:100], status)
        self._respond(status, payload, {**extra, "x-request-id": rid}, keep,
                      head=method == "HEAD")
        return keep

    def _respond(self, status: int, payload: bytes, headers: dict[str, str], keep: bool, *,
                 head: bool = False) -> None:
        out = [f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n".encode(), b"server: " + SERVER + b"\r\n"]
        out += [f"{k}: {v}\r\n".encode("latin-1", "replace") for k, v in headers.items()]
        if status != 204:
            out.append(f"content-length: {len(payload)}\r\n".encode())
        if not keep:
            out.append(b"connection: close\r\n")
        out.append(b"\r\n")
        if not head and status != 204:  # HEAD: the GET answer's headers, never a body
            out.append(payload)
        self._write(b"".join(out))
        if not keep and self.transport is not None:
            self.closed = True
            self.transport.close()

    def _fail(self, status: int, message: str, code: str | None = None) -> None:
        """A request the stream cannot recover from: answer, then close the connection."""
        body = {"error": message, **({"code": code} if code else {})}
        self._respond(status, json.dumps(body).encode(), dict(_JSON), keep=False)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class LocalServer:
    """The listening socket and the event loop that serves it (`serve_forever` blocks)."""

    def __init__(self, api: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api = api
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=256)
        self.connections: set[_Connection] = set()
        self.server_address = self.socket.getsockname()
        self.loop = asyncio.new_event_loop()
        self._served = threading.Event()

    def serve_forever(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            self.loop.create_server(lambda: _Connection(self.api, self.connections),
                                    sock=self.socket))
        try:
            self.loop.run_forever()
        finally:
            server.close()
            for conn in list(self.connections):  # keep-alive clients: end them too
                if conn.transport is not None:
                    conn.transport.close()
            self.loop.run_until_complete(asyncio.sleep(0))
            self._served.set()

    def shutdown(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._served.wait(10)

    def server_close(self) -> None:
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()
        self.socket.close()


def make_server(api: Any, host: str = "127.0.0.1", port: int = 0) -> LocalServer:
    return LocalServer(api, host, port)


# A thread waiting for the GIL gets it when the running thread blocks, or after the switch
# interval (5 ms by default) while that thread runs Python: a request arriving during a
# capture flush waited up to 5 ms per hand-over. 0.5 ms keeps that wait out of the tail at a
# throughput cost within noise (bench/http_load.py).
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
