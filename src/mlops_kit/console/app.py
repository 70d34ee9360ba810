"""The console's routes: (method, path, headers, body) -> Response, mounted by the HTTP API
under /ui/ (the local server and the cloud serve function alike).

Read-only: GET pages only; the two POSTs sign in and out. Auth: with an authorizer (the local
server's bearer token) a request passes with a valid `Authorization: Bearer` header (API
clients) or a console session cookie (browsers, see sessions.py); without one (the cloud, where
the API gateway authorizes every route; or `serve --no-auth`) the pages are open to whoever the
gateway let through. Every response carries a strict CSP and no-sniff / no-referrer headers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from urllib.parse import parse_qs, urlsplit

from mlops_kit.console.data import ConsoleData
from mlops_kit.console.html import Html
from mlops_kit.console.model_pages import model_page
from mlops_kit.console.pages import error_page, login_page, models_page
from mlops_kit.console.sessions import Sessions, cookie_header, read_cookie
from mlops_kit.console.style import CSS_BYTES, CSS_ETAG
from mlops_kit.console.version_page import version_page
from mlops_kit.core.layout import NAME_PATTERN
from mlops_kit.core.registry import Registry
from mlops_kit.core.serving.http_api import Response
from mlops_kit.errors import MlopsKitError, NotFound, Unauthorized
from mlops_kit.ports import ObjectStore

__all__ = ["CSP", "PREFIX", "Console"]

log = logging.getLogger("mlops_kit.console")
PREFIX = "/ui"
MAX_FORM_BYTES = 4096
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
# Stored pages (monitoring report, run page) have inline CSS and no script; sandboxed anyway.
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
              "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox")
# same-origin, not no-referrer: under no-referrer browsers send `Origin: null` with the sign-in
# form, which the cross-site check must then refuse; nothing leaves for another origin either way
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "same-origin",
                    "x-frame-options": "DENY", "cross-origin-opener-policy": "same-origin",
                    "cross-origin-resource-policy": "same-origin"}
_MODEL = re.compile(rf"^models/({NAME_PATTERN})$")
_VERSION = re.compile(rf"^models/({NAME_PATTERN})/versions/(\d{{1,9}})$")
_REPORT = re.compile(rf"^models/({NAME_PATTERN})/report$")
_RUN = re.compile(rf"^models/({NAME_PATTERN})/runs/(\d{{1,9}})$")
_NEXT = re.compile(rf"^(models/{NAME_PATTERN}(/versions/\d{{1,9}}|/runs/\d{{1,9}}|/report)?)?$")

Authorize = Callable[[Mapping[str, str]], None]
# console.signin.SESSION_COOKIE (not imported: that module loads the OIDC client): behind the
# AWS cookie authorizer the pages show Sign out, which posts to the sign-in function
GATEWAY_SESSION = "mk_session"


def _response(status: int, body: bytes, content_type: str, *, csp: str = CSP,
              extra: dict[str, str] | None = None) -> Response:
    headers = {"content-type": content_type, "content-security-policy": csp,
               "cache-control": "no-store", **SECURITY_HEADERS, **(extra or {})}
    return Response(status, {}, headers, raw=body)


class Console:
    def __init__(self, store: ObjectStore, registry: Registry, *,
                 authorize: Authorize | None = None, sessions: Sessions | None = None) -> None:
        self.data = ConsoleData(store, registry)
        self.authorize = authorize
        self.sessions = sessions or Sessions()

    # -- entry point ----------------------------------------------------------------------
    def __call__(self, method: str, path: str, headers: Mapping[str, str],
                 body: bytes | None) -> Response:
        """headers lower-cased (HttpApi does it); path without the query string."""
        if path == PREFIX:  # the mount point itself: into the console's folder
            return _response(308, b"", "text/plain", extra={"location": "ui/"})
        rel = path[len(PREFIX) + 1:]
        root = "../" * rel.count("/") or "./"
        method = method.upper()
        try:
            if rel == "static/console.css":
                return self._css(headers)
            if rel == "login":
                return self._login(method, headers, body, root) if method == "POST" else \
                    self._html(200, login_page(root, ""))
            signed_in, via_cookie = self._signed_in(headers)
            if rel == "logout" and method == "POST":
                return self._logout(headers, root)
            if not signed_in:
                return self._html(401, login_page(root, rel if _NEXT.fullmatch(rel) else ""),
                                  {"www-authenticate": 'Bearer realm="mlops-kit"'})
            if method != "GET":
                return self._html(405, error_page(405, "the console only reads; every change "
                                                       "goes through the audited CLI", root=root,
                                                  signed_in=via_cookie), {"allow": "GET"})
            return self._page(rel, root, via_cookie)
        except MlopsKitError as exc:
            status = exc.status if exc.status < 500 else 500
            message = exc.message if status < 500 else "internal error"
            if status >= 500:
                log.error("console %s failed: %s", rel[:100], exc.message)
            return self._html(status, error_page(status, message, root=root))
        except Exception:  # noqa: BLE001 - never a traceback in a page
            log.exception("console %s crashed", rel[:100])
            return self._html(500, error_page(500, "internal error", root=root))

    def _page(self, rel: str, root: str, via_cookie: bool) -> Response:
        if rel == "":
            return self._html(200, models_page(self.data.overview(), root=root,
                                               signed_in=via_cookie))
        if m := _MODEL.fullmatch(rel):
            return self._html(200, model_page(self.data.model(m.group(1)), root=root,
                                              signed_in=via_cookie))
        if m := _VERSION.fullmatch(rel):
            return self._html(200, version_page(self.data.version(m.group(1), int(m.group(2))),
                                                root=root, signed_in=via_cookie))
        if m := _REPORT.fullmatch(rel):
            return _response(200, self.data.report_html(m.group(1)), "text/html; charset=utf-8",
                             csp=REPORT_CSP)
        if m := _RUN.fullmatch(rel):  # the run's own page (trials ranked), sandboxed like reports
            return _response(200, self.data.run_html(m.group(1), int(m.group(2))),
                             "text/html; charset=utf-8", csp=REPORT_CSP)
        raise NotFound(f"no console page at {rel[:100]!r}", field="path")

    # -- auth -----------------------------------------------------------------------------
    def _generation(self) -> str | None:
        gen = getattr(self.authorize, "generation", None)
        return gen() if callable(gen) else None

    def _signed_in(self, headers: Mapping[str, str]) -> tuple[bool, bool]:
        """(allowed, via a session cookie)."""
        if self.authorize is None:  # the gateway authorized (AWS: its cookie authorizer)
            return True, read_cookie(headers, GATEWAY_SESSION) is not None
        if "authorization" in headers:
            try:
                self.authorize(headers)
                return True, False
            except Unauthorized:
                pass  # a stale header does not hide a valid session
        if self.sessions.valid(read_cookie(headers), self._generation()):
            return True, True
        return False, False

    def _login(self, method: str, headers: Mapping[str, str], body: bytes | None,
               root: str) -> Response:
        if self.authorize is None:
            return _response(303, b"", "text/plain", extra={"location": "./"})
        if not _same_origin(headers):
            return self._html(403, error_page(403, "sign-in must come from the console's own "
                                                   "page", root=root))
        if body is not None and len(body) > MAX_FORM_BYTES:
            return self._html(413, login_page(root, "", "the form is too large"))
        try:
            form = parse_qs((body or b"").decode("utf-8", "replace"), max_num_fields=4)
        except ValueError:  # more fields than the form has
            return self._html(400, login_page(root, "", "the form is not valid"))
        token = (form.get("token") or [""])[0].strip()
        next_path = (form.get("next") or [""])[0]
        next_path = next_path if _NEXT.fullmatch(next_path) else ""
        try:
            if not token:
                raise Unauthorized("a token is required", field="token")
            self.authorize({"authorization": f"Bearer {token}"})
        except Unauthorized:
            return self._html(401, login_page(root, next_path, "That token is not valid."))
        sid = self.sessions.create(self._generation())
        return _response(303, b"", "text/plain", extra={
            "location": next_path or "./",
            "set-cookie": cookie_header(sid, secure=_https(headers))})

    def _logout(self, headers: Mapping[str, str], root: str) -> Response:
        if not _same_origin(headers):
            return self._html(403, error_page(403, "sign-out must come from the console",
                                              root=root))
        self.sessions.drop(read_cookie(headers))
        return _response(303, b"", "text/plain", extra={
            "location": "login", "set-cookie": cookie_header("", secure=_https(headers),
                                                             clear=True)})

    # -- responses ------------------------------------------------------------------------
    @staticmethod
    def _html(status: int, page: Html, extra: dict[str, str] | None = None) -> Response:
        return _response(status, page.encode(), "text/html; charset=utf-8", extra=extra)

    @staticmethod
    def _css(headers: Mapping[str, str]) -> Response:
        # pages link it as console.css?v=<hash>: a new stylesheet is a new URL
        cache = {"etag": CSS_ETAG, "cache-control": "public, max-age=86400"}
        if headers.get("if-none-match") == CSS_ETAG:
            r = _response(304, b"", "text/css; charset=utf-8", extra=cache)
        else:
            r = _response(200, CSS_BYTES, "text/css; charset=utf-8", extra=cache)
        return r


def _https(headers: Mapping[str, str]) -> bool:
    """Behind API Gateway / a TLS proxy the original scheme is in X-Forwarded-Proto."""
    return headers.get("x-forwarded-proto", "").split(",")[0].strip().lower() == "https"


def _same_origin(headers: Mapping[str, str]) -> bool:
    """Sign-in/out forms: refuse cross-site posts (login CSRF). Browsers send Sec-Fetch-Site
    and Origin on POST; clients that send neither (curl) are not browsers being tricked."""
    site = headers.get("sec-fetch-site")
    if site is not None:  # the browser's own verdict (every current browser sends it)
        return site in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return True
    host = headers.get("x-forwarded-host") or headers.get("host") or ""
    return origin != "null" and urlsplit(origin).netloc == host
