"""The console through the HTTP API (as the local server and the serve function call it), on a
real local workspace: auth and sessions, headers, routing, escaping, read-only."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest

from mlops_kit.console import CSP
from mlops_kit.console.html import Html, html
from mlops_kit.console.sessions import Sessions, cookie_header, read_cookie
from mlops_kit.console.svg import Point, line_chart
from mlops_kit.local.auth import ensure_token, rotate_token
from mlops_kit.local.server import build_api


@pytest.fixture
def site(trained):
    token = ensure_token(trained.settings.workspace)
    return build_api(trained, auth=True, workspace=trained.settings.workspace), token


def get(api, path, **headers):
    return api.handle("GET", path, headers, None)


def login(api, token, next_path="", **headers):
    body = urlencode({"token": token, "next": next_path}).encode()
    return api.handle("POST", "/ui/login", {"content-type": "application/x-www-form-urlencoded",
                                            **headers}, body)


def cookie_of(resp) -> str:
    return resp.headers["set-cookie"].split(";")[0]


def text(resp) -> str:
    return resp.payload().decode()


def test_pages_refuse_anonymous_requests_with_the_sign_in_form(site):
    api, _ = site
    for path in ("/ui/", "/ui/models/churn", "/ui/models/churn/versions/1",
                 "/ui/models/churn/report"):
        r = get(api, path)
        assert r.status == 401, path
        assert 'name="token"' in text(r) and "churn" not in text(r).split("<main>")[1].split(
            'name="next"')[0]
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert get(api, "/ui/", authorization="Bearer wrong").status == 401
    # the stylesheet of the sign-in page is public (it is code, not data)
    assert get(api, "/ui/static/console.css").status == 200


def test_a_bearer_header_opens_the_pages(site):
    api, token = site
    r = get(api, "/ui/", authorization=f"Bearer {token}")
    assert r.status == 200 and 'data-model="churn"' in text(r)
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert r.headers["cache-control"] == "no-store"
    assert "<script" not in text(r) and " style=" not in text(r)


def test_sign_in_sets_an_httponly_strict_cookie_never_the_token(site):
    api, token = site
    bad = login(api, "mk_not-the-token")
    assert bad.status == 401 and "not valid" in text(bad) and "set-cookie" not in bad.headers
    ok = login(api, token, "models/churn")
    assert ok.status == 303 and ok.headers["location"] == "models/churn"
    set_cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert "Secure" not in set_cookie  # plain http on loopback: a Secure cookie would be lost
    assert token not in set_cookie and token not in ok.headers["location"]
    page = get(api, "/ui/models/churn", cookie=cookie_of(ok))
    assert page.status == 200 and "Sign out" in text(page) and token not in text(page)
    secure = login(api, token, **{"x-forwarded-proto": "https"})
    assert "Secure" in secure.headers["set-cookie"]


def test_sign_out_ends_the_session(site):
    api, token = site
    cookie = cookie_of(login(api, token))
    assert get(api, "/ui/", cookie=cookie).status == 200
    out = api.handle("POST", "/ui/logout", {"cookie": cookie}, b"")
    assert out.status == 303 and "Max-Age=0" in out.headers["set-cookie"]
    assert get(api, "/ui/", cookie=cookie).status == 401


def test_rotating_the_token_ends_every_session(site, trained):
    api, token = site
    cookie = cookie_of(login(api, token))
    assert get(api, "/ui/", cookie=cookie).status == 200
    new = rotate_token(trained.settings.workspace)
    assert get(api, "/ui/", cookie=cookie).status == 401
    assert get(api, "/ui/", authorization=f"Bearer {token}").status == 401
    assert get(api, "/ui/", authorization=f"Bearer {new}").status == 200
    # the inference API follows the rotation too, without a restart
    assert get(api, "/v1/models/churn", authorization=f"Bearer {token}").status == 401
    assert get(api, "/v1/models/churn", authorization=f"Bearer {new}").status == 200


def test_cross_site_sign_in_and_open_redirects_are_refused(site):
    api, token = site
    assert login(api, token, **{"sec-fetch-site": "cross-site"}).status == 403
    assert login(api, token, origin="https://evil.example", host="127.0.0.1:8080").status == 403
    assert login(api, token, origin="http://127.0.0.1:8080", host="127.0.0.1:8080").status == 303
    assert login(api, token, origin="null", host="127.0.0.1:8080").status == 403
    assert login(api, token, **{"sec-fetch-site": "same-origin"}).status == 303
    stuffed = api.handle("POST", "/ui/login", {}, b"&".join(b"a%d=1" % i for i in range(9)))
    assert stuffed.status == 400 and "set-cookie" not in stuffed.headers
    huge = api.handle("POST", "/ui/login", {}, b"token=" + b"x" * 5000)
    assert huge.status == 413
    for evil in ("//evil.example/", "https://evil.example", "../../v1/models/churn",
                 "models/churn/../../x"):
        assert login(api, token, evil).headers["location"] == "./"


def test_the_console_only_reads(site):
    api, token = site
    auth = {"authorization": f"Bearer {token}"}
    for method in ("POST", "PUT", "DELETE"):
        r = api.handle(method, "/ui/models/churn", auth, b"{}")
        assert r.status == 405 and r.headers["allow"] == "GET"


def test_routes_and_errors_are_html(site):
    api, token = site
    auth = {"authorization": f"Bearer {token}"}
    r = api.handle("GET", "/ui", {}, None)
    assert r.status == 308 and r.headers["location"] == "ui/"
    assert api.handle("GET", "/ui/models/nope", auth, None).status == 404
    assert api.handle("GET", "/ui/models/churn/versions/9", auth, None).status == 404
    bad = api.handle("GET", "/ui/models/Bad%20Name", auth, None)
    assert bad.status == 404 and bad.headers["content-type"].startswith("text/html")
    css = get(api, "/ui/static/console.css")
    assert css.headers["content-type"].startswith("text/css")
    again = get(api, "/ui/static/console.css", **{"if-none-match": css.headers["etag"]})
    assert again.status == 304 and again.payload() == b""
    # relative links: the console works under any mount point (an API Gateway stage too)
    page = text(api.handle("GET", "/ui/models/churn/versions/1", auth, None))
    assert 'href="../../../static/console.css?v=' in page and 'href="../../../models/churn"' in page
    assert not re.search(r'(href|src|action)="/', page)


def test_api_routes_are_untouched(site):
    api, token = site
    assert api.handle("GET", "/v2/health/ready", {}, None).status == 200
    assert api.handle("GET", "/v1/models/churn", {}, None).status == 401
    assert api.handle("GET", "/uix", {"authorization": f"Bearer {token}"}, None).status == 404


def test_no_auth_mode_serves_without_sign_in(trained):
    api = build_api(trained, auth=False)
    r = get(api, "/ui/")
    assert r.status == 200 and "Sign out" not in text(r)


# -- building blocks ----------------------------------------------------------------------------
def test_html_escapes_every_value_but_markup():
    out = html("<p title=\"{}\">{}{}</p>", '"><script>', "<b>x</b>", Html("<i>ok</i>"))
    assert out == '<p title="&quot;&gt;&lt;script&gt;">&lt;b&gt;x&lt;/b&gt;<i>ok</i></p>'


def test_line_chart_has_a_marker_per_value_and_gaps():
    svg = line_chart([Point("v1", 0.8), Point("v2", None), Point("v3", 0.9, "champion"),
                      Point("<v4>", 0.85)], title="auc <per> version", threshold=0.82)
    values = re.findall(r'data-value="([^"]+)"', svg)
    assert [float(v) for v in values] == [0.8, 0.9, 0.85]
    assert 'class="pt champion"' in svg and "data-threshold=\"0.82\"" in svg
    assert "&lt;v4&gt;" in svg and "<v4>" not in svg and "auc &lt;per&gt; version" in svg
    assert "style=" not in svg
    assert "no data" in line_chart([Point("a", None)], title="t")


def test_sessions_expire_and_are_bound_to_the_token_generation():
    t = [0.0]
    s = Sessions(now=lambda: t[0], idle=10, max_age=100, limit=2)
    a = s.create("g1")
    assert s.valid(a, "g1") and not s.valid(a, "g2")  # a rotation ends it ...
    assert not s.valid(a, "g1")  # ... for good
    b = s.create("g1")
    t[0] = 9
    assert s.valid(b, "g1")
    t[0] = 20
    assert not s.valid(b, "g1")  # idle too long
    c, d, e = s.create("g"), s.create("g"), s.create("g")
    assert len(s) == 2 and not s.valid(c, "g") and s.valid(e, "g")  # the oldest made room
    assert not s.valid(None, "g") and not s.valid("x" * 500, "g")
    assert d


def test_cookie_helpers():
    assert read_cookie({"cookie": "a=1; mk_console=abc; b=2"}) == "abc"
    assert read_cookie({"cookie": "mk_consolex=1"}) is None
    assert read_cookie({}) is None
    header = cookie_header("abc", secure=True)
    assert header.startswith("mk_console=abc;") and "Secure" in header and "Path" not in header
