"""Console sign-in on AWS (issue 25): the OIDC flow's HTTP exchanges against a local issuer
(tests/oidc_stub.py: discovery, JWKS, authorize, token with PKCE), the session cookie checked by
the real authorizer code, and the cookie key read from SSM under the functions' own rendered
policy with moto enforcing IAM.

Rules checked, with their pages: authorization code + PKCE S256 (RFC 7636 4.2-4.6,
https://www.rfc-editor.org/rfc/rfc7636), state and nonce (OpenID Connect Core 1.0 3.1.2.1,
3.1.3.7: iss, aud, exp, nonce; https://openid.net/specs/openid-connect-core-1_0.html), the
authorizer's simple response `{"isAuthorized": bool}` (payload 2.0,
https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-lambda-authorizer.html).
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from mlops_kit.console.signin import (
    FLOW_COOKIE,
    SESSION_COOKIE,
    OidcClient,
    OidcSettings,
    SignIn,
    authorize_event,
    seal,
)
from tests.oidc_stub import OidcStub

BASE = "https://api.example.com"
CALLBACK = BASE + "/ui/callback"
KEY = b"k" * 43


class StaticKey:
    def __init__(self, key: bytes | None) -> None:
        self.key = key

    def current(self) -> bytes | None:
        return self.key


@pytest.fixture(scope="module")
def stub():
    s = OidcStub()
    s.redirect_uris.add(CALLBACK)
    yield s
    s.close()


@pytest.fixture
def signin(stub):
    stub.tamper = None
    return SignIn(OidcClient(OidcSettings(stub.issuer, stub.client_id)), StaticKey(KEY))


def _cookie(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1]


def start(signin, next_path: str = "") -> tuple[str, str]:
    """GET /ui/login, then the browser at the issuer: (the callback's query, the flow cookie)."""
    r = signin("/ui/login", f"next={next_path}", {}, None, BASE)
    assert r.status == 302 and len(r.cookies) == 1
    flow = _cookie(r.cookies[0])
    at_idp = requests.get(r.headers["location"], allow_redirects=False, timeout=5)
    assert at_idp.status_code == 302, at_idp.text
    back = urlsplit(at_idp.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    return back.query, flow


def finish(signin, query: str, flow: str | None):
    headers = {"cookie": f"{FLOW_COOKIE}={flow}"} if flow else {}
    return signin("/ui/callback", query, headers, None, BASE)


def session_of(reply) -> str | None:
    for c in reply.cookies:
        if c.startswith(SESSION_COOKIE + "="):
            return _cookie(c)
    return None


def authorizer(session: str | None, key: bytes | None = KEY, now=time.time) -> bool:
    event = {"version": "2.0", "type": "REQUEST", "cookies": [f"{SESSION_COOKIE}={session}"]
             if session else [], "headers": {}}
    return authorize_event(event, StaticKey(key), now)["isAuthorized"]


def test_the_flow_signs_in_with_pkce_state_and_nonce_and_the_authorizer_accepts_it(signin, stub):
    r = signin("/ui/login", "next=models/churn", {}, None, BASE)
    url = urlsplit(r.headers["location"])
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == stub.issuer + "/authorize"
    assert q["response_type"] == "code" and q["code_challenge_method"] == "S256"
    assert q["redirect_uri"] == CALLBACK and "openid" in q["scope"].split()
    assert len(q["state"]) >= 32 and len(q["nonce"]) >= 32 and len(q["code_challenge"]) == 43
    assert r.cookies[0].endswith("HttpOnly; Secure; SameSite=Lax; Max-Age=600")
    assert "verifier" not in r.cookies[0] and q["state"] not in r.cookies[0]  # sealed, not plain

    query, flow = start(signin, "models/churn")
    done = finish(signin, query, flow)
    assert done.status == 302 and done.headers["location"] == "models/churn"
    [session_cookie] = [c for c in done.cookies if c.startswith(SESSION_COOKIE)]
    assert session_cookie.endswith("HttpOnly; Secure; SameSite=Lax; Max-Age=28800")
    assert "Path=" not in session_cookie  # the console's folder only, never the inference API
    assert any(c.startswith(f"{FLOW_COOKIE}=;") and "Max-Age=0" in c for c in done.cookies)
    token_request = stub.token_requests[-1]  # the verifier went to the token endpoint only
    assert len(token_request["code_verifier"]) >= 43 and token_request["redirect_uri"] == CALLBACK
    session = session_of(done)
    assert authorizer(session) is True
    event = {"headers": {"cookie": f"other=1; {SESSION_COOKIE}={session}"}}
    assert authorize_event(event, StaticKey(KEY)) == {"isAuthorized": True,
                                                      "context": {"sub": "alice"}}


@pytest.mark.parametrize("tamper", ["audience", "issuer", "nonce", "expired", "key"])
def test_an_id_token_wrong_in_any_way_signs_nobody_in(signin, stub, tamper):
    query, flow = start(signin)
    stub.tamper = tamper
    done = finish(signin, query, flow)
    assert done.status == 400 and session_of(done) is None
    assert "Sign-in failed" in done.body and "Traceback" not in done.body


def test_state_the_flow_cookie_and_the_code_are_each_checked(signin, stub):
    query, flow = start(signin)
    forged = query.replace("state=", "state=x")
    assert finish(signin, forged, flow).status == 400  # state from another sign-in (CSRF)
    assert finish(signin, query, None).status == 400  # started elsewhere: no flow cookie
    other = seal(b"o" * 43, "flow", {"state": "s", "nonce": "n", "verifier": "v",
                                     "exp": time.time() + 60})
    assert finish(signin, query, other).status == 400  # sealed with another key
    ok = finish(signin, query, flow)
    assert ok.status == 302 and session_of(ok)
    replay = finish(signin, query, flow)  # a code is good once (the issuer says invalid_grant)
    assert replay.status == 400 and session_of(replay) is None
    assert finish(signin, "error=access_denied&state=x", flow).status == 400


def test_a_malformed_callback_is_a_400_page(signin):
    r = signin("/ui/callback", "&".join(f"f{i}=1" for i in range(40)), {}, None, BASE)
    assert r.status == 400 and not r.cookies


def test_the_landing_page_is_only_ever_a_console_page(signin):
    for evil in ("https://evil.example/", "//evil.example", "../v1/models", "models/a/../../x"):
        query, flow = start(signin, evil)
        done = finish(signin, query, flow)
        assert done.headers["location"] == "./", evil


def test_the_session_cookie_cannot_be_forged_altered_reused_as_another_kind_or_outlive(signin):
    query, flow = start(signin)
    session = session_of(finish(signin, query, flow))
    assert authorizer(session)
    body, mac = session.split(".")
    assert not authorizer(body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac)
    assert not authorizer(seal(KEY, "session", {"sub": "mallory"}) + "x")
    assert not authorizer(flow)  # a sign-in cookie is sealed for another kind
    assert not authorizer(seal(b"o" * 43, "session", {"sub": "a", "exp": time.time() + 60}))
    assert not authorizer(session, now=lambda: time.time() + 8 * 3600 + 1)  # expired
    assert not authorizer(session, key=b"r" * 43)  # the key was rotated: every session ends
    assert not authorizer(None) and not authorizer("garbage") and not authorizer("a" * 5000)


def test_without_a_key_sign_in_says_what_to_run_and_everyone_is_refused(stub):
    signin = SignIn(OidcClient(OidcSettings(stub.issuer, stub.client_id)), StaticKey(None))
    r = signin("/ui/login", "", {}, None, BASE)
    assert r.status == 503 and "mlops-kit token --rotate" in r.body and not r.cookies
    assert not authorizer(seal(KEY, "session", {"sub": "a", "exp": time.time() + 60}), key=None)
    short = seal(b"s" * 8, "session", {"sub": "a", "exp": time.time() + 60})
    assert not authorizer(short, key=b"s" * 8)  # too short a key is no key


def test_the_front_door_lets_a_signed_in_browser_straight_in(signin, stub):
    """/ui/login is the console's URL (the stack's console_url): with a valid session it goes
    straight to the page asked for (a console page only), without one to the issuer."""
    query, flow = start(signin)
    session = [f"{SESSION_COOKIE}={session_of(finish(signin, query, flow))}"]
    n = len(stub.requests)
    assert signin("/ui/login", "", {}, session, BASE).headers["location"] == "./"
    assert signin("/ui/login", "next=models/churn", {}, session, BASE).headers[
        "location"] == "models/churn"
    assert signin("/ui/login", "next=//evil.example", {}, session, BASE).headers[
        "location"] == "./"
    assert len(stub.requests) == n  # no round trip to the issuer
    stale = [f"{SESSION_COOKIE}=x.y"]
    assert signin("/ui/login", "", {}, stale, BASE).headers["location"].startswith(stub.issuer)
    assert signin("/ui", "", {}, session, BASE).status == 404  # the gateway sends /ui to serve


def test_a_discovery_document_for_another_issuer_is_refused(stub):
    client = OidcClient(OidcSettings(stub.issuer + "/", stub.client_id))
    r = SignIn(client, StaticKey(KEY))("/ui/login", "", {}, None, BASE)
    assert r.status == 400 and "another issuer" in r.body


# -- the Lambda handlers with the key in SSM, IAM enforced ----------------------------------------
@pytest.mark.iam_enforced
def test_the_functions_read_the_key_under_their_own_policy_and_rotation_ends_sessions(stub):
    from botocore.exceptions import ClientError

    from mlops_kit.adapters.aws import acting_as, client
    from mlops_kit.adapters.aws.ssm import SsmCookieKey
    from tests.moto_support import aws_world
    from tests.oidc_stub import console_sign_in

    with aws_world() as world:
        routes, name, identity, module = console_sign_in(world, stub)
        gateway_base = "http://127.0.0.1:9"
        stub.redirect_uris.add(gateway_base + "/ui/callback")
        event = {"rawPath": "/ui/login", "rawQueryString": "", "headers": {},
                 "requestContext": {"domainName": "127.0.0.1:9"}}
        login = routes.sign_in(event, None)
        assert login["statusCode"] == 302, login
        at_idp = requests.get(login["headers"]["location"], allow_redirects=False, timeout=5)
        back = urlsplit(at_idp.headers["location"])
        done = routes.sign_in({**event, "rawPath": "/ui/callback", "rawQueryString": back.query,
                               "cookies": [login["cookies"][0].split(";")[0]]}, None)
        assert done["statusCode"] == 302, done
        session = next(c.split(";")[0] for c in done["cookies"] if c.startswith(SESSION_COOKIE))
        request = {"version": "2.0", "type": "REQUEST", "cookies": [session], "headers": {}}
        assert routes.authorize(request, None) == {"isAuthorized": True,
                                                   "context": {"sub": "alice"}}

        # the policy is the only reason it works: another parameter is refused to the same keys
        world.client("ssm").put_parameter(Name="/other/secret", Value="x", Type="SecureString")
        with acting_as(identity), pytest.raises(ClientError) as refused:
            client("ssm", region=world.res.region).get_parameter(Name="/other/secret",
                                                                 WithDecryption=True)
        assert refused.value.response["Error"]["Code"] in ("AccessDenied",
                                                           "AccessDeniedException")
        with acting_as(identity), pytest.raises(ClientError):  # nor may it write the key
            client("ssm", region=world.res.region).put_parameter(
                Name=name, Value="y" * 43, Type="SecureString", Overwrite=True)

        SsmCookieKey(name, lambda: world.client("ssm")).rotate()  # the operator rotates
        module.reset()  # a new container; a warm one re-reads the key within a minute
        assert routes.authorize(request, None) == {"isAuthorized": False}
        kid = world.client("ssm").describe_parameters(ParameterFilters=[
            {"Key": "Name", "Option": "Equals", "Values": [name]}])["Parameters"][0]["KeyId"]
        assert kid.startswith("arn:aws:kms:")  # still the stack's key, not aws/ssm


def test_a_broken_authorizer_denies(monkeypatch):
    from mlops_kit.emulate import load_function

    module = load_function("console_signin")
    monkeypatch.delenv("MLOPSKIT_CONSOLE_KEY_PARAMETER", raising=False)
    from mlops_kit.settings import get_settings

    get_settings.cache_clear()
    module.reset()
    assert module.authorize({"cookies": ["mk_session=x"]}, None) == {"isAuthorized": False}
    out = module.handler({"rawPath": "/ui/login", "headers": {}}, None)
    assert out["statusCode"] == 500 and "Traceback" not in out["body"]
    get_settings.cache_clear()
    module.reset()


def test_token_rotate_on_aws_replaces_the_key_in_ssm_and_never_shows_it():
    """`mlops-kit token --rotate` with MLOPSKIT_BACKEND=aws: a new key in the SecureString
    (under the same KMS key), a JSON document without the key; without --rotate, or without
    the parameter's name, a usage error (exit 2) that says what to do, no traceback."""
    import json

    from typer.testing import CliRunner

    from infra.components.console_signin import SSM_PLACEHOLDER
    from mlops_kit.adapters.aws import client
    from mlops_kit.cli.app import app
    from tests.moto_support import REGION, moto_account

    runner = CliRunner()
    with moto_account():
        key = client("kms", region=REGION).create_key()["KeyMetadata"]["Arn"]
        ssm = client("ssm", region=REGION)
        ssm.put_parameter(Name="/mlk/console/cookie-key", Value=SSM_PLACEHOLDER,
                          Type="SecureString", KeyId=key)
        env = {"MLOPSKIT_BACKEND": "aws", "MLOPSKIT_REGION": REGION,
               "MLOPSKIT_CONSOLE_KEY_PARAMETER": "/mlk/console/cookie-key"}
        values = []
        for _ in range(2):
            r = runner.invoke(app, ["token", "--rotate", "--json"], env=env)
            assert r.exit_code == 0, r.output
            out = json.loads(r.stdout)
            assert out == {"rotated": "console cookie key", "parameter": "/mlk/console/cookie-key",
                           "sessions_end_within_s": 60}
            p = ssm.get_parameter(Name="/mlk/console/cookie-key", WithDecryption=True)
            values.append(p["Parameter"]["Value"])
            assert values[-1] not in r.stdout and len(values[-1]) >= 43
        assert values[0] != values[1] and SSM_PLACEHOLDER not in values
        [meta] = ssm.describe_parameters()["Parameters"]
        assert meta["KeyId"] == key and meta["Type"] == "SecureString"

        r = runner.invoke(app, ["token", "--json"], env=env)
        assert r.exit_code == 2 and "--rotate" in r.output and "Traceback" not in r.output
        r = runner.invoke(app, ["token", "--rotate", "--json"],
                          env={**env, "MLOPSKIT_CONSOLE_KEY_PARAMETER": ""})
        assert r.exit_code == 2 and "console_cookie_key_parameter" in r.output
