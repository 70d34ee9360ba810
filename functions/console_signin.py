"""console sign-in on AWS: two entry points of one zip (mlops_kit.console.signin does the work).

- `handler`: the HTTP API routes `GET /ui/login`, `GET /ui/callback` (no gateway auth: this
  is where a browser signs in).
- `authorize`: the Lambda REQUEST authorizer (payload 2.0, simple responses) on `GET /ui` and
  `GET /ui/{proxy+}`: checks the session cookie; an error denies.

The cookie key is read from SSM (MLOPSKIT_CONSOLE_KEY_PARAMETER names the parameter) with the
function's role, cached a minute per container."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from mlops_kit.adapters.aws import client
from mlops_kit.adapters.aws.ssm import SsmCookieKey
from mlops_kit.console.signin import OidcClient, OidcSettings, SignIn, authorize_event
from mlops_kit.settings import get_settings

log = logging.getLogger("mlops_kit.console_signin")


@cache
def _keys() -> SsmCookieKey:
    s = get_settings()
    if not s.console_key_parameter:
        raise RuntimeError("MLOPSKIT_CONSOLE_KEY_PARAMETER is not set")
    return SsmCookieKey(s.console_key_parameter, lambda: client(
        "ssm", region=s.region, endpoint_url=s.endpoint_url))


@cache
def _sign_in() -> SignIn:
    s = get_settings()
    if not (s.console_oidc_issuer and s.console_oidc_client_id):
        raise RuntimeError("MLOPSKIT_CONSOLE_OIDC_ISSUER / _CLIENT_ID are not set")
    return SignIn(OidcClient(OidcSettings(s.console_oidc_issuer, s.console_oidc_client_id)),
                  _keys())


def reset() -> None:
    """Forget the cached key and client (tests change the environment)."""
    _keys.cache_clear()
    _sign_in.cache_clear()


def authorize(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return authorize_event(event, _keys())
    except Exception:  # noqa: BLE001 - a broken authorizer denies, it never lets through
        log.exception("console authorizer failed")
        return {"isAuthorized": False}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    rc = event.get("requestContext") or {}
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    # API Gateway terminates TLS and says so; the emulator runs plain http on loopback
    scheme = headers.get("x-forwarded-proto", "http").split(",")[0].strip()
    host = rc.get("domainName") or headers.get("host", "localhost")
    try:
        reply = _sign_in()(event.get("rawPath") or "/", event.get("rawQueryString") or "",
                           headers, event.get("cookies"), f"{scheme}://{host}")
    except Exception:  # noqa: BLE001 - never a traceback in a page
        log.exception("console sign-in failed")
        return {"statusCode": 500, "headers": {"content-type": "text/plain"},
                "body": "internal error", "isBase64Encoded": False}
    return {"statusCode": reply.status, "headers": reply.headers, "cookies": reply.cookies,
            "body": reply.body, "isBase64Encoded": False}
