"""The console signed in from a real browser (headless Debian Chromium, playwright) through the
OIDC stub (tests/oidc_stub.py), the way a deployed stack signs in (issue 25, "Done when").

AWS path: the emulated HTTP API gateway routes /ui as the Pulumi program does (GET /ui/login,
/ui/callback to the sign-in function, no auth; GET /ui and /ui/{proxy+} through the Lambda
REQUEST authorizer on the Cookie header, then serve), moto with IAM enforced, each function
under its own rendered policy and the cookie key in SSM. The browser starts at /ui/login (the
stack's console_url), is sent to the issuer and back, and lands on the models page; the
cookie is then the only thing that lets it in, and a rotation (`mlops-kit token --rotate`)
sends it back to sign in.
"""

from __future__ import annotations

import threading

import pytest

from tests.oidc_stub import OidcStub
from tests.support import chromium

pytestmark = [pytest.mark.slow, pytest.mark.iam_enforced]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    executable = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def stub():
    s = OidcStub()
    yield s
    s.close()


@pytest.fixture(scope="module")
def aws_site(stub):
    from mlops_kit.emulate import context_for, make_gateway
    from tests.moto_support import aws_world
    from tests.oidc_stub import console_sign_in

    with aws_world() as world:
        routes, name, _, module = console_sign_in(world, stub)
        fn = world.topo.http.function
        server = make_gateway(world.fns[fn].handler, lambda: context_for(world.topo, fn),
                              console=routes)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        stub.redirect_uris.add(url + "/ui/callback")
        try:
            yield url, world, name, module
        finally:
            server.shutdown()
            server.server_close()


def test_a_browser_signs_in_through_the_issuer_and_lands_on_the_models_page(browser, stub,
                                                                          aws_site):
    import requests

    url, world, name, module = aws_site
    # no cookie: API Gateway's own 401 (the identity source is missing), never a page
    for path in ("/ui", "/ui/", "/ui/models/churn"):
        direct = requests.get(url + path, timeout=10, allow_redirects=False)
        assert direct.status_code == 401 and direct.json() == {"message": "Unauthorized"}

    context = browser.new_context()
    page = context.new_page()
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    resp = page.goto(url + "/ui/login")  # the stack's console_url
    assert resp is not None and resp.status == 200
    assert page.url == url + "/ui/"
    assert page.locator("h1").inner_text() == "Models"
    assert any(u.startswith(stub.issuer + "/authorize?") for u in seen)  # via the issuer
    assert any(u.startswith(url + "/ui/callback?code=") for u in seen)

    [cookie] = [c for c in context.cookies() if c["name"] == "mk_session"]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/ui"  # the console's folder: never sent to /v1 or /v2
    assert page.evaluate("document.cookie") == ""  # script cannot read it
    # the cookie is what lets the browser in: a fresh browser without it is refused
    assert requests.get(url + "/ui/", timeout=10).status_code == 401
    with_cookie = requests.get(url + "/ui/", timeout=10,
                               headers={"cookie": f"mk_session={cookie['value']}"})
    assert with_cookie.status_code == 200 and "<h1>Models</h1>" in with_cookie.text
    forged = requests.get(url + "/ui/", timeout=10,
                          headers={"cookie": f"mk_session={cookie['value'][:-3]}abc"})
    assert forged.status_code == 403 and forged.json() == {"message": "Forbidden"}

    # inside: /ui (serve's redirect into its folder) and the front door go straight in
    seen.clear()
    assert page.goto(url + "/ui").status == 200 and page.url == url + "/ui/"
    assert page.goto(url + "/ui/login").status == 200 and page.url == url + "/ui/"
    assert not any(u.startswith(stub.issuer) for u in seen)

    # Sign out (the pages show it behind the cookie): the sign-in function clears the cookie
    assert page.goto(url + "/ui/").status == 200
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    assert page.url == url + "/ui/logout" and page.locator("h1").inner_text() == "Signed out"
    assert not [c for c in context.cookies() if c["name"] == "mk_session"]
    assert page.goto(url + "/ui/").status == 401
    seen.clear()
    assert page.goto(url + "/ui/login").status == 200 and page.url == url + "/ui/"
    assert any(u.startswith(stub.issuer + "/authorize?") for u in seen)  # signed in again

    # `mlops-kit token --rotate`: the session ends; /ui sends the browser through sign-in again
    from mlops_kit.adapters.aws.ssm import SsmCookieKey

    SsmCookieKey(name, lambda: world.client("ssm")).rotate()
    module.reset()  # a new container (a warm one re-reads the key within its 60 s cache)
    assert page.goto(url + "/ui/").status == 403
    seen.clear()
    assert page.goto(url + "/ui/login").status == 200 and page.url == url + "/ui/"
    assert any(u.startswith(stub.issuer + "/authorize?") for u in seen)
    context.close()


# -- Azure: App Service authentication's RedirectToLoginPage, emulated in front of the app ------
@pytest.fixture(scope="module")
def azure_site(stub, azurite):
    import uuid

    pytest.importorskip("azure.functions")
    from mlops_kit.console.signin import OidcClient, OidcSettings
    from mlops_kit.emulate.azure_emulator import AzureEmulator

    emu = AzureEmulator(connection_string=azurite.connection_string, suffix=uuid.uuid4().hex[:8])
    assert emu.auth is not None
    emu.auth.login = OidcClient(OidcSettings(stub.issuer, stub.client_id))
    emu.setup()
    url = emu.start_gateway()
    stub.redirect_uris.add(url + "/.auth/login/aad/callback")
    try:
        yield url, emu
    finally:
        emu.stop()


def test_azure_redirects_a_browser_to_sign_in_and_back_to_the_console(browser, stub, azure_site):
    """infra/azure_stack/functions.py sets unauthenticatedClientAction RedirectToLoginPage with
    console sign-in: a browser without a session goes to /.auth/login/aad, the issuer, the
    callback, and back to the page it asked for (post_login_redirect_uri); an XHR and an API
    client without a token still get 401 (https://learn.microsoft.com/en-us/azure/app-service/
    configure-authentication-customize-sign-in-out)."""
    import requests

    url, emu = azure_site
    xhr = requests.get(url + "/ui/", timeout=10, allow_redirects=False,
                       headers={"x-requested-with": "XMLHttpRequest"})
    assert xhr.status_code == 401
    api = requests.post(url + "/v1/models/churn:predict", json={"instances": [{}]}, timeout=10,
                        allow_redirects=False, headers={"authorization": "Bearer wrong"})
    assert api.status_code == 401
    first = requests.get(url + "/ui/", timeout=10, allow_redirects=False)
    assert first.status_code == 302
    assert first.headers["location"] == "/.auth/login/aad?post_login_redirect_uri=/ui/"

    context = browser.new_context()
    page = context.new_page()
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    resp = page.goto(url + "/ui/")
    assert resp is not None and resp.status == 200, resp and resp.text()
    assert page.url == url + "/ui/"
    assert page.locator("h1").inner_text() == "Models"
    assert any(u.startswith(stub.issuer + "/authorize?") for u in seen)
    assert any(u.startswith(url + "/.auth/login/aad/callback?code=") for u in seen)
    [cookie] = [c for c in context.cookies() if c["name"] == "AppServiceAuthSession"]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["path"] == "/"
    # the session is the platform's: the app saw the principal headers, as with a token
    assert requests.get(url + "/ui/", timeout=10, allow_redirects=False, headers={
        "cookie": f"AppServiceAuthSession={cookie['value']}"}).status_code == 200
    assert requests.get(url + "/ui/", timeout=10, allow_redirects=False, headers={
        "cookie": f"AppServiceAuthSession={cookie['value'][:-2]}xx"}).status_code == 302
    context.close()
