"""Console sign-in where the gateway authorizes (AWS): OpenID Connect in, a stateless cookie out.

A browser can sign neither SigV4 nor carry a bearer header, so on AWS the console's routes
are reached with a cookie:

- `GET /ui/login` (the console's front door: a browser already signed in goes straight in)
  starts an authorization-code flow with PKCE (S256), `state` and `nonce`
  against the configured issuer (a Cognito user pool or any OIDC provider). The three values
  travel in a short-lived sealed cookie (`mk_signin`, 10 minutes), not in server memory.
- `GET /ui/callback` checks `state` against that cookie, exchanges the code at the token
  endpoint (with the PKCE verifier) and verifies the ID token with PyJWT: RS256/ES256 signature
  against the issuer's JWKS, `iss`, `aud`, `exp`/`iat`, and `nonce`. It then sets the session
  cookie (`mk_session`): the subject and an expiry, sealed with HMAC-SHA256.
- The API's Lambda REQUEST authorizer (`authorize_event`) checks that cookie on every other
  console route (`GET /ui`, `GET /ui/{proxy+}`). Any container verifies any session: no
  server state, so sessions survive cold starts and scale-out, and rotating the key
  (`mlops-kit token --rotate`) ends all of them.

Cookies are `HttpOnly; Secure; SameSite=Lax` (Lax: the callback is a top-level navigation
from the identity provider, which Strict would strip) and carry no Path, so they are scoped
to the console's folder, never sent to the inference API. The key comes from a `KeySource`
(SSM Parameter Store on AWS, see adapters/aws/ssm.py); this module knows no cloud.

Sealed values are `base64url(json) "." base64url(hmac_sha256(key_for(kind), json))`, with a
separate key derived per kind, so a sign-in cookie can never pass as a session. Protocol pieces
are libraries': hmac/hashlib (stdlib) and PyJWT for the ID token (JOSE, JWKS).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode

__all__ = ["FLOW_COOKIE", "SESSION_COOKIE", "KeySource", "OidcClient", "OidcSettings",
           "SignIn", "SignInError", "authorize_event", "seal", "unseal"]

log = logging.getLogger("mlops_kit.console.signin")

SESSION_COOKIE = "mk_session"
FLOW_COOKIE = "mk_signin"
SESSION_SECONDS = 8 * 3600
FLOW_SECONDS = 600
MIN_KEY_BYTES = 32  # a shorter key (or the placeholder the stack creates) refuses everyone
MAX_COOKIE = 4096
HTTP_TIMEOUT_S = 5.0
ALGORITHMS = ["RS256", "ES256"]  # never "none", never HS* (the client id is public)
# where a signed-in browser may be sent back to: the console's own pages, nothing else
_NEXT = re.compile(r"^(models/[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(/versions/\d{1,9}|/runs/\d{1,9}"
                   r"|/report)?)?$")


class SignInError(Exception):
    """The flow cannot complete; the message is safe to show (no token, no key)."""


class KeySource(Protocol):
    def current(self) -> bytes | None:
        """The cookie key, or None when none is set yet (everyone is refused)."""
        ...


# -- sealed values ----------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derived(key: bytes, kind: str) -> bytes:
    return hmac.new(key, b"mlops-kit console " + kind.encode(), hashlib.sha256).digest()


def seal(key: bytes, kind: str, claims: Mapping[str, Any]) -> str:
    body = json.dumps(dict(claims), separators=(",", ":"), sort_keys=True).encode()
    mac = hmac.new(_derived(key, kind), body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def unseal(key: bytes | None, kind: str, value: str | None, now: float) -> dict[str, Any] | None:
    """The claims of a value sealed with `key` for `kind`, or None: wrong key or kind, altered,
    malformed, or past its `exp`."""
    if not key or len(key) < MIN_KEY_BYTES or not value or len(value) > MAX_COOKIE:
        return None
    body_b64, sep, mac_b64 = value.partition(".")
    if not sep:
        return None
    try:
        body, mac = _unb64(body_b64), _unb64(mac_b64)
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(mac, hmac.new(_derived(key, kind), body, hashlib.sha256).digest()):
        return None
    try:
        claims = json.loads(body)
    except ValueError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(exp, (int, float)) or exp <= now:
        return None
    return claims


def cookie_value(headers: Mapping[str, str], cookies: list[str] | None, name: str) -> str | None:
    """One cookie from a payload 2.0 event (`cookies`) or a Cookie header (lower-cased keys)."""
    parts = list(cookies or [])
    parts += headers.get("cookie", "").split(";")
    for part in parts:
        k, sep, v = part.strip().partition("=")
        if sep and k == name:
            return v.strip().strip('"') or None
    return None


def set_cookie(name: str, value: str, max_age: int) -> str:
    """No Path: the default is the folder of the URL that sets it (/ui), see sessions.py."""
    return f"{name}={value}; HttpOnly; Secure; SameSite=Lax; Max-Age={max_age}"


# -- OpenID Connect -----------------------------------------------------------------------------
@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    scopes: str = "openid email"


def _get_json(url: str, data: bytes | None = None) -> dict[str, Any]:
    if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise SignInError("the identity provider must be reached over https")
    req = urllib.request.Request(url, data=data, headers={
        "accept": "application/json",
        **({"content-type": "application/x-www-form-urlencoded"} if data is not None else {})})
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:  # noqa: S310
            out = json.loads(resp.read(1 << 20))
    except urllib.error.HTTPError as exc:
        log.warning("identity provider answered %s at %s", exc.code, url.split("?")[0])
        raise SignInError("the identity provider refused the sign-in") from None
    except (OSError, ValueError):
        log.warning("identity provider unreachable or not JSON at %s", url.split("?")[0])
        raise SignInError("the identity provider could not be reached") from None
    if not isinstance(out, dict):
        raise SignInError("the identity provider's answer is not valid")
    return out


@dataclass
class OidcClient:
    """A public client (no secret; PKCE instead) of one issuer. Discovery and the JWKS are
    fetched once per container (PyJWKClient refetches on an unknown `kid`: key rollover)."""

    settings: OidcSettings
    fetch: Callable[..., dict[str, Any]] = _get_json
    _meta: dict[str, Any] | None = field(default=None, repr=False)
    _jwks: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._meta is None:
                meta = self.fetch(self.settings.issuer.rstrip("/")
                                  + "/.well-known/openid-configuration")
                if meta.get("issuer") != self.settings.issuer:  # OIDC Discovery 1.0, 4.3
                    raise SignInError("the discovery document names another issuer")
                for k in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(meta.get(k), str):
                        raise SignInError(f"the discovery document has no {k}")
                self._meta = meta
            return self._meta

    def begin(self, key: bytes, redirect_uri: str, next_path: str, now: float,
              landing: re.Pattern[str] = _NEXT) -> tuple[str, str]:
        """(the authorization URL to send the browser to, the sealed flow cookie). `next_path`
        is kept only if `landing` matches it all (no open redirect)."""
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)  # RFC 7636: 43-128 characters
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        query = urlencode({"response_type": "code", "client_id": self.settings.client_id,
                           "redirect_uri": redirect_uri, "scope": self.settings.scopes,
                           "state": state, "nonce": nonce, "code_challenge": challenge,
                           "code_challenge_method": "S256"})
        flow = seal(key, "flow", {"state": state, "nonce": nonce, "verifier": verifier,
                                  "next": next_path if landing.fullmatch(next_path) else "",
                                  "exp": int(now) + FLOW_SECONDS})
        return f"{self.metadata()['authorization_endpoint']}?{query}", flow

    def complete(self, key: bytes, query: Mapping[str, str], flow_cookie: str | None,
                 redirect_uri: str, now: float) -> tuple[dict[str, Any], str]:
        """(the verified ID token's claims, the page to land on) or SignInError."""
        flow = unseal(key, "flow", flow_cookie, now)
        if flow is None:
            raise SignInError("the sign-in expired or did not start here: start again")
        if "error" in query:
            raise SignInError("the identity provider did not sign you in")
        if not hmac.compare_digest(str(query.get("state", "")), str(flow["state"])):
            raise SignInError("the sign-in does not match the one started here: start again")
        code = query.get("code") or ""
        if not code or len(code) > 2048:
            raise SignInError("the identity provider sent no code")
        tokens = self.fetch(self.metadata()["token_endpoint"], urlencode({
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": self.settings.client_id, "code_verifier": flow["verifier"]}).encode())
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInError("the identity provider sent no ID token")
        claims = self._verify(id_token, flow["nonce"])
        return claims, flow.get("next") or ""

    def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        import jwt  # PyJWT[crypto]: imported by the sign-in function only, never the authorizer

        if self._jwks is None:
            self._jwks = jwt.PyJWKClient(self.metadata()["jwks_uri"], cache_keys=True,
                                         timeout=int(HTTP_TIMEOUT_S))
        try:
            signing_key = self._jwks.get_signing_key_from_jwt(id_token)
            claims = jwt.decode(id_token, signing_key.key, algorithms=ALGORITHMS,
                                audience=self.settings.client_id, issuer=self.settings.issuer,
                                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
                                leeway=30)
        except jwt.PyJWTError as exc:
            log.warning("ID token refused: %s", type(exc).__name__)
            raise SignInError("the identity provider's ID token is not valid") from None
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):  # OIDC Core 3.1.3.7
            raise SignInError("the ID token was not issued for this sign-in")
        return claims


# -- the two Lambda entry points' logic ---------------------------------------------------------
def authorize_event(event: Mapping[str, Any], keys: KeySource,
                    now: Callable[[], float] = time.time) -> dict[str, Any]:
    """An HTTP API REQUEST authorizer's simple response (payload 2.0) for a console request."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    value = cookie_value(headers, event.get("cookies"), SESSION_COOKIE)
    claims = unseal(keys.current(), "session", value, now())
    if claims is None:
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": {"sub": str(claims.get("sub", ""))[:256]}}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    cookies: list[str]
    body: str = ""


def _page(status: int, title: str, message: str, login: str = "login") -> Reply:
    """`login`: the sign-in page relative to the page's URL (/ui/* pages: "login")."""
    from html import escape

    body = (f"<!doctype html><html lang=en><meta charset=utf-8><title>{escape(title)}</title>"
            f"<h1>{escape(title)}</h1><p>{escape(message)}</p>"
            f'<p><a href="{escape(login)}">Sign in again</a></p></html>')
    return Reply(status, {"content-type": "text/html; charset=utf-8", "cache-control": "no-store",
                          "content-security-policy": "default-src 'none'",
                          "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
                          "x-frame-options": "DENY"}, [], body)


def _redirect(location: str, cookies: list[str] | None = None) -> Reply:
    return Reply(302, {"location": location, "cache-control": "no-store",
                       "referrer-policy": "no-referrer"}, cookies or [])


@dataclass
class SignIn:
    """`GET /ui/login`, `GET /ui/callback` and `POST /ui/logout`: the routes the gateway
    leaves open. Sign-out clears the session cookie (a stateless session cannot be revoked
    one by one: `mlops-kit token --rotate` ends them all)."""

    oidc: OidcClient
    keys: KeySource
    now: Callable[[], float] = time.time

    def __call__(self, path: str, query: str, headers: Mapping[str, str],
                 cookies: list[str] | None, base_url: str) -> Reply:
        """`base_url`: scheme://host of the API (the redirect URI is base_url/ui/callback)."""
        if path == "/ui/logout":  # POST only (the route); works without a key too
            reply = _page(200, "Signed out", "You are signed out of the console. Your identity "
                          "provider may still remember you: sign out there too on a shared "
                          "computer.")
            return Reply(reply.status, reply.headers, [set_cookie(SESSION_COOKIE, "", 0)],
                         reply.body)
        key = self.keys.current()
        if not key or len(key) < MIN_KEY_BYTES:
            return _page(503, "Console sign-in is not set up",
                         "No cookie key yet: an operator runs `mlops-kit token --rotate`.")
        redirect_uri = base_url.rstrip("/") + "/ui/callback"
        try:
            params = {k: v[0] for k, v in parse_qs(query[:8192], max_num_fields=16).items()}
        except ValueError:  # more fields than any step of the flow sends
            return _page(400, "Sign-in failed", "the request is not valid")
        try:
            if path == "/ui/login":  # the console's front door (the stack's console_url)
                next_path = params.get("next", "")
                session = cookie_value(headers, cookies, SESSION_COOKIE)
                if unseal(key, "session", session, self.now()) is not None:  # already in
                    return _redirect(next_path if _NEXT.fullmatch(next_path) and next_path
                                     else "./")
                url, flow = self.oidc.begin(key, redirect_uri, next_path, self.now())
                return _redirect(url, [set_cookie(FLOW_COOKIE, flow, FLOW_SECONDS)])
            if path == "/ui/callback":
                flow_cookie = cookie_value(headers, cookies, FLOW_COOKIE)
                claims, next_path = self.oidc.complete(key, params, flow_cookie, redirect_uri,
                                                       self.now())
                session = seal(key, "session", {"sub": claims["sub"],
                                                "exp": int(self.now()) + SESSION_SECONDS})
                return _redirect(next_path or "./", [
                    set_cookie(SESSION_COOKIE, session, SESSION_SECONDS),
                    set_cookie(FLOW_COOKIE, "", 0)])
        except SignInError as exc:
            return _page(400, "Sign-in failed", str(exc))
        return _page(404, "Not found", "no such sign-in page")
