"""The console in a real browser: headless Debian Chromium driven by playwright (never
`playwright install`), against `mlops-kit serve`'s server over a workspace with a real
lifecycle (tests/lifecycle.py: retrain on drift, rollback, canary, shadow, labels, XSS).

Skips only where Chromium is missing outside CI. The README screenshot is written to
docs/console.png when MLOPSKIT_UPDATE_DOCS=1 (otherwise to a temp dir, still checked)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mlops_kit.local.auth import rotate_token
from mlops_kit.local.server import ServerThread, build_api
from tests.lifecycle import XSS_DESCRIPTION, XSS_FILE
from tests.support import chromium, make_backend, png_pixels

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
FEATURES = {"tenure_months", "monthly_charges", "support_calls", "age", "plan", "region",
            "payment"}


@pytest.fixture(scope="module")
def site(lifecycle_workspace):
    ws = lifecycle_workspace["workspace"]
    backend = make_backend(ws, capture=False)
    token = rotate_token(ws)
    srv = ServerThread(build_api(backend, auth=True, workspace=ws)).start()
    yield srv.url, token, backend
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    executable = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.messages = []  # every console message: a CSP violation would show up here
    pg.on("console", lambda m: pg.messages.append(f"{m.type}: {m.text}"))
    yield pg
    context.close()


def sign_in(page, url: str, token: str, path: str = "/ui/") -> None:
    page.goto(url + path)
    page.fill("#token", token)
    with page.expect_navigation():
        page.click("form.login button[type=submit]")
    assert page.url == url + path


def values(page, selector: str) -> list[float]:
    return [float(v) for v in page.eval_on_selector_all(
        selector, "els => els.map(e => e.getAttribute('data-value'))")]


def no_csp_violations(page) -> None:
    assert not [m for m in page.messages if "Content Security Policy" in m], page.messages


def test_sign_in_is_required_and_the_token_never_reaches_the_page(page, site):
    url, token, _ = site
    resp = page.goto(url + "/ui/models/churn")
    assert resp.status == 401
    assert page.locator("#token").is_visible() and page.locator("#versions").count() == 0
    page.fill("#token", "mk_wrong")
    with page.expect_navigation() as nav:
        page.click("form.login button[type=submit]")
    assert nav.value.status == 401 and "not valid" in page.inner_text(".error")

    page.fill("#token", token)
    with page.expect_navigation():
        page.click("form.login button[type=submit]")
    assert page.url == url + "/ui/models/churn"  # back where the visitor was going
    assert page.locator("#versions").is_visible()
    [cookie] = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert token not in cookie["value"] and token not in page.url
    assert page.evaluate("document.cookie") == ""  # HttpOnly: invisible to scripts
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert token not in page.content()

    with page.expect_navigation():
        page.click("header form button")  # Sign out
    assert page.url == url + "/ui/login" and page.locator("#token").is_visible()
    assert page.goto(url + "/ui/").status == 401
    no_csp_violations(page)


def test_models_page_shows_aliases_weights_and_drift(page, site):
    url, token, _ = site
    sign_in(page, url, token)
    rows = page.locator("#models tbody tr")
    assert rows.count() == 3
    churn = page.locator('tr[data-model="churn"]').inner_text()
    assert "v2" in churn and "canary" in churn and "10% of traffic" in churn and "drift" in churn
    forest = page.locator('tr[data-model="churn-forest"]').inner_text()
    assert "shadow" in forest and "no drift" in forest
    assert "not monitored yet" in page.locator('tr[data-model="xss-lab"]').inner_text()
    no_csp_violations(page)


def test_model_page_plots_the_lifecycle(page, site, tmp_path):
    url, token, backend = site
    reg = backend.ctx.registry
    sign_in(page, url, token, "/ui/models/churn")
    # metric per version: one marker per version carrying the registry's value
    versions = reg.list_versions("churn")
    assert values(page, "figure.metric svg circle.pt") == pytest.approx(
        [v["metrics"]["roc_auc"] for v in versions])
    assert page.locator("figure.metric circle.pt.champion").get_attribute("data-label") == "v2"
    assert page.locator("figure.metric svg").bounding_box()["width"] > 600  # drawn, not hidden
    # drift per feature over time: one chart per feature, one marker per monitoring run
    runs = reg.monitoring_runs("churn")
    assert len(runs) == 7
    figures = page.locator("#drift figure")
    assert {figures.nth(i).get_attribute("data-feature") for i in range(figures.count())} \
        == FEATURES
    charges = values(page, 'figure[data-feature="monthly_charges"] circle.pt')
    assert charges == pytest.approx([r["features"]["monthly_charges"]["psi"] for r in runs])
    assert charges[-1] > 1 > charges[0]  # the planted drift, growing hour after hour
    drifted = {n for n, f in runs[-1]["features"].items() if f["drifted"]}
    assert drifted and page.locator("#drift figure.drifted").count() == len(drifted)
    assert page.locator("#drift line.threshold").count() == len(FEATURES)
    quality = values(page, "figure.live-quality circle.pt")
    assert len(quality) == 7 and all(0.5 < q <= 1 for q in quality)
    # the history: three promotions (v1, v2, the retrained v3), the rollback, the canary
    assert page.locator("#history li.promote").count() == 3
    rollback = page.locator("#history li.rollback").inner_text()
    assert "v3 → v2" in rollback and "under-performs" in rollback
    assert "drift" in page.locator('#versions tr[data-version="3"]').inner_text()
    no_csp_violations(page)

    shot = tmp_path / "console.png"
    page.set_viewport_size({"width": 1280, "height": 1500})
    page.screenshot(path=str(shot))
    width, height, raw = png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 1500) and len(set(raw)) > 50  # not a blank page
    if os.environ.get("MLOPSKIT_UPDATE_DOCS") == "1":
        shutil.copy(shot, ROOT / "docs" / "console.png")


def test_version_page_shows_lineage_parity_and_card(page, site):
    url, token, _ = site
    sign_in(page, url, token, "/ui/models/churn/versions/3")
    lineage = page.inner_text("#lineage")
    assert "retrain-" in lineage and "drift" in lineage and "logistic_regression" in lineage
    assert "passed" in page.inner_text("main") and page.locator("#gates").is_visible()
    assert "Will a customer cancel" in page.inner_text("#card-description")
    assert "challenger" in page.inner_text("h1")
    no_csp_violations(page)


def test_xss_payloads_in_user_strings_stay_inert_text(page, site):
    url, token, _ = site
    sign_in(page, url, token)
    for path in ("/ui/", "/ui/models/xss-lab", "/ui/models/xss-lab/versions/1"):
        assert page.goto(url + path).status == 200
        assert page.evaluate("typeof window.__xss") == "undefined", path
        # escaped, not merely blocked by the CSP: no element was ever made from the payloads
        assert page.evaluate("document.querySelectorAll('script, [onload], [onerror]')"
                             ".length") == 0, path
        no_csp_violations(page)
    assert page.inner_text("#card-description") == XSS_DESCRIPTION  # shown, as text
    assert f"datasets/xss-lab/{XSS_FILE}" in page.inner_text("#lineage")
    page.goto(url + "/ui/models/xss-lab")
    assert XSS_FILE in page.inner_text("#versions")


def test_the_latest_monitoring_report_opens_sandboxed(page, site):
    url, token, _ = site
    sign_in(page, url, token, "/ui/models/churn")
    with page.expect_navigation() as nav:
        page.click("#last-run a")
    resp = nav.value
    assert resp.status == 200 and "sandbox" in resp.headers["content-security-policy"]
    assert page.locator("figure.feature svg").count() == len(FEATURES)


def test_experiment_runs_are_listed_and_open(page, site):
    url, token, backend = site
    [run] = backend.ctx.runs.list_runs("churn-forest")
    sign_in(page, url, token, "/ui/models/churn-forest")
    row = page.locator(f'#runs tr[data-run="{run["run"]}"]').inner_text()
    assert "finished" in row and f"{run['done']} / {run['total']}" in row and "v2" in row
    assert page.locator("#runs tbody tr").count() == 1
    assert page.locator("#versions tbody tr").count() == 2
    with page.expect_navigation() as nav:
        page.click(f'#runs a[href$="runs/{run["run"]}"]')
    resp = nav.value
    assert resp.status == 200 and "sandbox" in resp.headers["content-security-policy"]
    assert "random_forest" in page.inner_text("body")  # the stored run page: trials ranked
    assert page.goto(url + "/ui/models/churn/runs/1").status == 404  # churn had no search
