"""A tiny OpenID Connect issuer for the console sign-in tests (stdlib http.server, keys from
cryptography, ID tokens signed by PyJWT): discovery, JWKS, an authorize endpoint that signs the
user in at once and redirects back with a code, and a token endpoint that checks the code, the
redirect URI, the client and the PKCE verifier (S256) before issuing an RS256 ID token.

`stub.tamper` makes the next ID tokens wrong in one way (audience, issuer, nonce, expiry,
signing key) so each check of the client can be seen refusing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


def _key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class OidcStub:
    def __init__(self, client_id: str = "mk-console", subject: str = "alice") -> None:
        self.client_id, self.subject = client_id, subject
        self.key, self.other_key, self.kid = _key(), _key(), "k1"
        self.redirect_uris: set[str] = set()  # registered callbacks (Cognito's callback_urls)
        self.codes: dict[str, dict[str, str]] = {}
        self.tamper: str | None = None
        self.requests: list[str] = []
        self.token_requests: list[dict[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.client_id, "sub": self.subject,
                  "iat": now, "exp": now + 300, "nonce": nonce, "email": "alice@example.com"}
        key = self.key
        match self.tamper:
            case "audience":
                claims["aud"] = "someone-else"
            case "issuer":
                claims["iss"] = "http://127.0.0.1:1"
            case "nonce":
                claims["nonce"] = "replayed"
            case "expired":
                claims.update(iat=now - 7200, exp=now - 3600)
            case "key":
                key = self.other_key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlsplit(self.path)
                stub.requests.append(url.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/.well-known/openid-configuration":
                    return self._json(200, {
                        "issuer": stub.issuer, "authorization_endpoint": stub.issuer + "/authorize",
                        "token_endpoint": stub.issuer + "/token", "jwks_uri": stub.issuer + "/jwks",
                        "response_types_supported": ["code"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "code_challenge_methods_supported": ["S256"]})
                if url.path == "/jwks":
                    return self._json(200, stub.jwks())
                if url.path == "/authorize":
                    ok = (q.get("client_id") == stub.client_id and q.get("response_type") == "code"
                          and q.get("redirect_uri") in stub.redirect_uris
                          and q.get("code_challenge_method") == "S256"
                          and "openid" in q.get("scope", "").split())
                    if not ok:
                        return self._json(400, {"error": "invalid_request"})
                    code = secrets.token_urlsafe(16)
                    stub.codes[code] = q
                    self.send_response(302)
                    self.send_header("location", q["redirect_uri"] + "?" + urlencode(
                        {"code": code, "state": q.get("state", "")}))
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return None
                return self._json(404, {"error": "not_found"})

            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(n).decode()).items()}
                stub.token_requests.append(form)
                if self.path != "/token" or form.get("grant_type") != "authorization_code":
                    return self._json(400, {"error": "unsupported_grant_type"})
                started = stub.codes.pop(form.get("code", ""), None)  # a code is used once
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(
                    hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if (started is None or form.get("client_id") != stub.client_id
                        or form.get("redirect_uri") != started["redirect_uri"]
                        or challenge != started["code_challenge"]):
                    return self._json(400, {"error": "invalid_grant"})
                return self._json(200, {"access_token": "opaque", "token_type": "Bearer",
                                        "expires_in": 300,
                                        "id_token": stub.id_token(started.get("nonce", ""))})

        return Handler


# -- the AWS side: the cookie key in SSM and the console functions under their own policy ------
CONSOLE_PREFIX = "mlk-test"


def console_sign_in(world, stub: OidcStub):
    """Provision what consoleAuth adds to an `aws_world` (moto, IAM enforced): a KMS key, the
    SecureString with the stack's placeholder, the rotation an operator runs after deploy, and
    an IAM user holding exactly the policy infra/components/console_signin.py renders. Returns
    the gateway's ConsoleRoutes (each handler under that user's keys), the parameter name and
    the functions module."""
    import os

    from infra.components.console_signin import SSM_PLACEHOLDER, signin_policy
    from mlops_kit.adapters.aws import Identity
    from mlops_kit.adapters.aws.ssm import SsmCookieKey
    from mlops_kit.emulate import acting, load_function
    from mlops_kit.emulate.gateway import ConsoleRoutes
    from mlops_kit.emulate.iam import StrictSsm, moto_policy
    from mlops_kit.settings import get_settings

    region = world.res.region
    kms, ssm, iam = world.client("kms"), world.client("ssm"), world.client("iam")
    key = kms.create_key(Description="console cookie key")["KeyMetadata"]
    name = f"/{CONSOLE_PREFIX}/console/cookie-key"
    param = ssm.put_parameter(Name=name, Value=SSM_PLACEHOLDER, Type="SecureString",
                              KeyId=key["Arn"])
    assert param["Version"] == 1
    SsmCookieKey(name, lambda: world.client("ssm")).rotate()  # `mlops-kit token --rotate`
    account = key["Arn"].split(":")[4]
    arn = f"arn:aws:ssm:{region}:{account}:parameter{name}"
    policy = signin_policy(arn, key["Arn"], region,
                           [f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/x"])
    user = f"{CONSOLE_PREFIX}-console"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="console",
                        PolicyDocument=json.dumps(moto_policy(policy)))
    k = iam.create_access_key(UserName=user)["AccessKey"]
    identity = Identity("console", k["AccessKeyId"], k["SecretAccessKey"],
                        instrument=StrictSsm(policy, f"arn:aws:iam::{account}:user/{user}"))
    stub.redirect_uris.add("placeholder")  # the caller adds the gateway's callback URL
    os.environ.update({"MLOPSKIT_CONSOLE_KEY_PARAMETER": name,
                       "MLOPSKIT_CONSOLE_OIDC_ISSUER": stub.issuer,
                       "MLOPSKIT_CONSOLE_OIDC_CLIENT_ID": stub.client_id})
    get_settings.cache_clear()
    module = load_function("console_signin")
    module.reset()
    routes = ConsoleRoutes(sign_in=acting(identity, module.handler),
                           authorize=acting(identity, module.authorize))
    return routes, name, identity, module
