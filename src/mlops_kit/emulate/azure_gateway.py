"""The front door of the emulated function app: a stdlib HTTP server that does what App Service
authentication and the Functions host do with a request before the HTTP-trigger function runs.

- Authentication (the stand-in for App Service authentication with Microsoft Entra ID and
  "return 401" for unauthenticated requests): the caller's bearer token is checked against
  the emulator's token (only its sha256 is kept); a good one becomes the X-MS-CLIENT-PRINCIPAL*
  headers the platform injects, any such header a client sent is dropped, and a missing or
  wrong token is a 401 for every path, before any function runs.
- Browser sign-in (`EasyAuth(login=OidcClient(...))`, the stand-in for
  `unauthenticatedClientAction: RedirectToLoginPage`, infra/azure_stack/functions.py): a
  request with neither a token nor a session is redirected to
  `/.auth/login/aad?post_login_redirect_uri=<path>` (an XMLHttpRequest still gets 401), which
  sends the browser to the issuer; `/.auth/login/aad/callback` verifies the ID token and sets
  the `AppServiceAuthSession` cookie (HttpOnly, Secure, SameSite=Lax, Path=/), which then yields
  the same principal headers a token does. The issuer here is the tests' OIDC stub, reached
  with the authorization code + PKCE (console/signin.py); App Service with Entra ID and no
  client secret uses the implicit id_token form_post flow instead: the redirects and the
  session are the same, the token's transport differs.
- Routing: the app's HTTP triggers by route template and method (FunctionsApp.match); no match
  is the host's empty 404; a function that raises is the host's empty 500.
- The request becomes a func.HttpRequest; the func.HttpResponse goes back with its status and
  headers (content-type from its mimetype, + charset for text/*, when it sets none).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlsplit

from mlops_kit.emulate.azure_functions import FunctionsApp
from mlops_kit.emulate.gateway import content_length

if TYPE_CHECKING:
    from mlops_kit.console.signin import OidcClient

log = logging.getLogger("mlops_kit.emulate.azure")
SESSION_COOKIE = "AppServiceAuthSession"
LOGIN, CALLBACK = "/.auth/login/aad", "/.auth/login/aad/callback"
_LANDING = re.compile(r"^/(?!/)[A-Za-z0-9/_.:-]{0,300}$")  # a path on this site, nothing else
SESSION_SECONDS = 8 * 3600

MAX_BODY = 100 * 1024 * 1024  # the Functions host's request size limit
PRINCIPAL_HEADERS = ("x-ms-client-principal", "x-ms-client-principal-id",
                     "x-ms-client-principal-name", "x-ms-client-principal-idp")


class EasyAuth:
    """Bearer-token authentication in front of the app (see the module docstring)."""

    def __init__(self, token: str | None = None, login: OidcClient | None = None) -> None:
        self.token = token or "mk_" + secrets.token_urlsafe(32)
        self._digest = hashlib.sha256(self.token.encode()).digest()
        self.login = login  # RedirectToLoginPage: browsers sign in at this issuer
        self._key = secrets.token_bytes(32)  # the platform's own session key

    def session_principal(self, headers: Mapping[str, str]) -> dict[str, str] | None:
        from mlops_kit.console.signin import cookie_value, unseal

        claims = unseal(self._key, "session", cookie_value(headers, None, SESSION_COOKIE),
                        time.time())
        return None if claims is None else _principal(str(claims.get("sub", "")), "aad")

    def start_login(self, query: str, base: str) -> tuple[int, dict[str, str], list[str]]:
        """/.auth/login/aad: to the issuer, the flow sealed in a short-lived cookie."""
        from mlops_kit.console.signin import FLOW_COOKIE, set_cookie

        assert self.login is not None
        landing = dict(parse_qsl(query)).get("post_login_redirect_uri", "/")
        url, flow = self.login.begin(self._key, base + CALLBACK, landing, time.time(),
                                     landing=_LANDING)
        return 302, {"location": url}, [set_cookie(FLOW_COOKIE, flow, 600)]

    def callback(self, query: str, flow_cookie: str | None, base: str
                 ) -> tuple[int, dict[str, str], list[str], bytes]:
        """/.auth/login/aad/callback: the ID token verified, the platform's session cookie."""
        from mlops_kit.console.signin import FLOW_COOKIE, SignInError, seal, set_cookie

        assert self.login is not None
        try:
            claims, landing = self.login.complete(self._key, dict(parse_qsl(query)), flow_cookie,
                                                  base + CALLBACK, time.time())
        except SignInError as exc:
            return 401, {"content-type": "text/plain; charset=utf-8"}, [], str(exc).encode()
        session = seal(self._key, "session", {"sub": claims["sub"],
                                              "exp": int(time.time()) + SESSION_SECONDS})
        return 302, {"location": landing or "/"}, [
            f"{SESSION_COOKIE}={session}; Path=/; HttpOnly; Secure; SameSite=Lax",
            set_cookie(FLOW_COOKIE, "", 0)], b""

    def principal(self, headers: Mapping[str, str]) -> dict[str, str] | None:
        """The headers the platform adds for an authenticated caller, or None (401)."""
        scheme, _, token = (headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        if not hmac.compare_digest(hashlib.sha256(token.strip().encode()).digest(), self._digest):
            return None
        return _principal("mlops-kit emulate", "aad")


def _principal(name: str, idp: str) -> dict[str, str]:
    """The headers App Service authentication injects for an authenticated caller."""
    claims = {"auth_typ": idp, "name_typ": "name", "role_typ": "roles",
              "claims": [{"typ": "name", "val": name}]}
    return {"x-ms-client-principal-id": "00000000-0000-0000-0000-00000000e4e4",
            "x-ms-client-principal-name": name, "x-ms-client-principal-idp": idp,
            "x-ms-client-principal": base64.b64encode(json.dumps(claims).encode()).decode()}


def make_functions_gateway(app: FunctionsApp, auth: EasyAuth | None, host: str = "127.0.0.1",
                           port: int = 0) -> ThreadingHTTPServer:
    import azure.functions as func

    class Gateway(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            log.debug("%s %s", self.command, self.path[:100])

        def _send(self, status: int, headers: Mapping[str, str], payload: bytes,
                  cookies: list[str] | None = None) -> None:
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(k, v)
            for c in cookies or []:
                self.send_header("set-cookie", c)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _handle(self) -> None:
            n = content_length(self.headers)
            if n is None or n > MAX_BODY:
                self.close_connection = True
                self._send(413 if n else 400, {}, b"")
                return
            headers = {k.lower(): v for k, v in self.headers.items()
                       if k.lower() not in PRINCIPAL_HEADERS}  # clients cannot set these
            parts = urlsplit(self.path)
            base = f"http://{self.headers.get('host', host)}"
            if auth is not None and auth.login is not None and parts.path in (LOGIN, CALLBACK):
                from mlops_kit.console.signin import FLOW_COOKIE, cookie_value

                status, out, cookies, page = auth.callback(
                    parts.query, cookie_value(headers, None, FLOW_COOKIE), base) \
                    if parts.path == CALLBACK else (*auth.start_login(parts.query, base), b"")
                self._send(status, out, page, cookies)
                return
            if auth is not None:  # from the headers, before the body is read (or not)
                principal = auth.principal(headers)
                if principal is None and auth.login is not None:
                    principal = auth.session_principal(headers)
                xhr = headers.get("x-requested-with", "").lower() == "xmlhttprequest"
                if principal is None and auth.login is not None and not xhr \
                        and "authorization" not in headers:
                    self.close_connection = bool(n)
                    self._send(302, {"location": f"{LOGIN}?post_login_redirect_uri="
                                                 f"{quote(parts.path, safe='/')}"}, b"")
                    return
                if principal is None:
                    self.close_connection = bool(n)  # its unread body must not be parsed
                    self._send(401, {"www-authenticate": 'Bearer realm="mlops-kit emulate"'}, b"")
                    return
                headers.update(principal)
            body = self.rfile.read(n) if n else b""
            found = app.match(self.command, parts.path)
            if found is None:
                self._send(404, {}, b"")
                return
            fn, route_params = found
            req = func.HttpRequest(self.command, f"http://{self.headers.get('host', host)}{self.path}",
                                   headers=headers, params=dict(parse_qsl(parts.query)),
                                   route_params=route_params, body=body)
            try:
                resp = fn.fn(req)
            except Exception:  # noqa: BLE001 - what the host answers when a function fails
                log.exception("HTTP function %s failed", fn.name)
                self._send(500, {}, b"")
                return
            out = {k.lower(): v for k, v in resp.headers.items()}
            if "content-type" not in out:  # what the worker does with mimetype and charset
                out["content-type"] = f"{resp.mimetype}; charset={resp.charset}" \
                    if resp.mimetype.startswith("text/") else resp.mimetype
            self._send(resp.status_code, out, resp.get_body() or b"")

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    server = ThreadingHTTPServer((host, port), Gateway)
    server.daemon_threads = True
    return server
