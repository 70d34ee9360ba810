"""A stdlib HTTP gateway that turns requests into HTTP API (payload 2.0) events for the serve
handler, like API Gateway does.

With `console` (the stack's `consoleAuth`), the console's routes are routed as the Pulumi
program routes them (infra/components/api.py): `GET /ui/login` and `/ui/callback` go to the
sign-in function with no authorization; `GET /ui` and `GET /ui/{proxy+}` go through the Lambda
REQUEST authorizer first, identity source `$request.header.Cookie`: no Cookie header is API Gateway's
401 without calling the authorizer, `isAuthorized: false` its 403, both with its JSON bodies
(an HTTP API has no gateway responses to customise); a valid cookie reaches serve."""

from __future__ import annotations

import base64
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mlops_kit.emulate.aws_events import http_api_event

log = logging.getLogger("mlops_kit.emulate")

MAX_BODY = 6 * 1024 * 1024  # Lambda's synchronous payload limit


def content_length(headers) -> int | None:
    """The body's length from a request's headers (an http.client.HTTPMessage), or None when
    the framing is ambiguous or malformed: Transfer-Encoding (alone or with a length), more
    than one Content-Length, or one that is not ASCII digits (int() would take '٣' and
    '+3'). The gateways answer None with 400 before reading anything."""
    if headers.get_all("transfer-encoding"):
        return None
    values = headers.get_all("content-length") or []
    if not values:
        return 0
    if len(values) > 1:
        return None
    v = values[0].strip()
    return int(v) if v.isascii() and v.isdigit() and len(v) <= 18 else None


@dataclass(frozen=True)
class ConsoleRoutes:
    """The sign-in function's handler and the authorizer's (each under its own identity)."""

    sign_in: Callable
    authorize: Callable


SIGN_IN_PATHS = ("/ui/login", "/ui/callback")


def console_route(method: str, path: str) -> str | None:
    """'sign_in', 'authorize' or None (not a console route: serve's own auth applies)."""
    if method == "POST" and path == "/ui/logout":
        return "sign_in"
    if method not in ("GET", "HEAD"):
        return None
    if path in SIGN_IN_PATHS:
        return "sign_in"
    return "authorize" if path == "/ui" or path.startswith("/ui/") else None


def make_gateway(handler: Callable, context: Callable[[], Any], host: str = "127.0.0.1",
                 port: int = 0, console: ConsoleRoutes | None = None) -> ThreadingHTTPServer:
    class Gateway(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            log.debug("%s %s", self.command, self.path[:100])

        def _send(self, status: int, headers: dict[str, str], payload: bytes,
                  cookies: list[str] | None = None) -> None:
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() != "content-length":
                    self.send_header(k, v)
            for c in cookies or []:  # payload 2.0: each `cookies` entry is one Set-Cookie
                self.send_header("set-cookie", c)
            if status != 204:
                self.send_header("content-length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":  # API Gateway drops the body of a HEAD answer
                self.wfile.write(payload)

        def _handle(self) -> None:
            n = content_length(self.headers)
            if n is None or n > MAX_BODY:  # answered from the headers: the body is never read
                self.close_connection = True
                self._send(413 if n else 400, {"content-type": "application/json"},
                           b'{"message":"Request Entity Too Large"}' if n
                           else b'{"message":"Bad Request"}')
                return
            body = self.rfile.read(n) if n else b""
            event = http_api_event(self.command, self.path, dict(self.headers.items()), body,
                                   source_ip=self.client_address[0],
                                   host=self.headers.get("host", "localhost"))
            target = handler
            route = console_route(self.command, event["rawPath"]) if console else None
            if console is not None and route == "sign_in":
                target = console.sign_in
            elif console is not None and route == "authorize":
                if not self.headers.get("cookie"):  # the identity source is missing
                    self._send(401, {"content-type": "application/json"},
                               b'{"message":"Unauthorized"}')
                    return
                try:
                    allowed = console.authorize(_authorizer_event(event), context())
                except Exception:  # noqa: BLE001 - API Gateway answers 500 when it fails
                    log.exception("authorizer invocation failed")
                    allowed = None
                if allowed is None or not isinstance(allowed.get("isAuthorized"), bool):
                    self._send(500, {"content-type": "application/json"},
                               b'{"message":"Internal Server Error"}')
                    return
                if not allowed["isAuthorized"]:
                    self._send(403, {"content-type": "application/json"},
                               b'{"message":"Forbidden"}')
                    return
            try:
                out = target(event, context())
                payload = out.get("body") or ""
                data = base64.b64decode(payload) if out.get("isBase64Encoded") else payload.encode()
                self._send(int(out.get("statusCode", 200)), out.get("headers") or {}, data,
                           out.get("cookies"))
            except Exception:  # noqa: BLE001 - what API Gateway answers when the function fails
                log.exception("serve invocation failed")
                self._send(500, {"content-type": "application/json"},
                           b'{"message":"Internal Server Error"}')

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    server = ThreadingHTTPServer((host, port), Gateway)
    server.daemon_threads = True
    return server


def _authorizer_event(request: dict[str, Any]) -> dict[str, Any]:
    """The REQUEST authorizer's payload 2.0 event for a request event: its identity source
    values, headers and cookies, the route's ARN (no body)."""
    rc = request["requestContext"]
    cookie = request["headers"].get("cookie", "")
    return {"version": "2.0", "type": "REQUEST",
            "routeArn": f"arn:aws:execute-api:us-east-1:{rc['accountId']}:{rc['apiId']}"
                        f"/{rc['stage']}/GET{request['rawPath']}",
            "identitySource": [cookie], "routeKey": "GET /ui/{proxy+}",
            "rawPath": request["rawPath"], "rawQueryString": request["rawQueryString"],
            "cookies": [c.strip() for c in cookie.split(";") if c.strip()],
            "headers": request["headers"], "requestContext": rc}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
