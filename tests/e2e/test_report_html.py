"""The monitoring report opens in a real headless browser and shows its charts; `mlops-kit
report` finds it. Skips only when Chromium is missing outside CI (in CI a missing browser fails)."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from mlops_kit.bootstrap import local_backend
from mlops_kit.clock import FixedClock
from mlops_kit.core.monitoring.report_html import render_report
from mlops_kit.core.monitoring.usecase import run_monitor
from tests.support import chromium, feature_records, png_pixels

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "age", "plan", "region",
            "payment"]


def browse(tmp_path, url: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--user-data-dir={tmp_path / 'chrome-profile'}", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


class Charts(HTMLParser):
    """Per-feature figures in the rendered DOM, with their SVG and visible bars."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, dict[str, int]] = {}
        self._current: str | None = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure" and "feature" in (a.get("class") or ""):
            self._current = a["data-feature"]
            self.figures[self._current] = {"svg": 0, "bars": 0}
            self._depth = 1
        elif self._current is not None:
            if tag == "figure":
                self._depth += 1
            if tag == "svg":
                self.figures[self._current]["svg"] += 1
            if tag == "rect" and "bar" in (a.get("class") or "") and float(a["height"]) > 0:
                self.figures[self._current]["bars"] += 1

    def handle_endtag(self, tag):
        if tag == "figure" and self._current is not None:
            self._depth -= 1
            if self._depth == 0:
                self._current = None


@pytest.fixture
def report(trained, tmp_path):
    b = local_backend(trained.settings, clock=FixedClock(datetime(2026, 3, 2, 12, tzinfo=UTC)))
    svc = b.service(capture=True)
    records = feature_records(600, seed=3, drift=1.0)
    for i in range(0, 600, 100):
        svc.predict("churn", records[i:i + 100], request_id=f"r{i}")
    svc.capture.flush()
    r = run_monitor(b.ctx, "churn", window_hours=1)
    assert r["drifted"]
    return b, r


def test_report_renders_charts_in_headless_chromium(report, tmp_path):
    b, r = report
    page = tmp_path / "report.html"
    page.write_bytes(b.ctx.store.get(r["html_key"]))
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.read_text())  # self-contained
    dom = browse(tmp_path, page.as_uri(), "--dump-dom").stdout
    charts = Charts()
    charts.feed(dom)
    assert set(charts.figures) == set(FEATURES)
    for name, found in charts.figures.items():
        assert found["svg"] == 1, name
        assert found["bars"] >= 2, name  # reference and current bars with a visible height
    assert dom.count('class="feature drifted"') == len(r["drift"]["drifted_features"])
    assert "monthly_charges" in dom and "Champion lineage" in dom and "Live quality" in dom

    shot = tmp_path / "shot.png"
    browse(tmp_path, page.as_uri(), f"--screenshot={shot}", "--window-size=1200,1600")
    width, height, raw = png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 1600)
    assert len(set(raw)) > 50  # not a blank page: text, bars in several colours


def test_report_escapes_user_data():
    html = render_report({"model": "m", "version": 1, "status": "ok", "summary": "<script>x",
                          "drift": {"features": {"<img src=x>": {
                              "type": "categorical", "psi": 0.1, "drifted": False,
                              "histogram": {"labels": ["<b>"], "ref": [1.0], "cur": [1.0]}}}}})
    assert "<script>x" not in html and "<img src=x>" not in html and "&lt;b&gt;" in html


def test_report_command_shows_the_latest(report, monkeypatch):
    import mlops_kit.cli.monitor  # noqa: F401 (registers `report`)
    from mlops_kit.cli.app import app

    b, r = report
    monkeypatch.setenv("MLOPSKIT_WORKSPACE", str(b.settings.workspace))
    runner = CliRunner()
    out = runner.invoke(app, ["report", "churn", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["report_key"] == r["report_key"] and doc["drifted"]
    out = runner.invoke(app, ["report", "churn", "--path"])
    assert out.exit_code == 0, out.output
    path = out.stdout.strip()
    assert path.endswith(r["html_key"])
    with open(path, encoding="utf-8") as f:
        assert "<svg" in f.read()
    human = runner.invoke(app, ["report", "churn"])
    assert human.exit_code == 0 and "monthly_charges" in human.stdout
    missing = runner.invoke(app, ["report", "nomodel", "--json"])
    assert missing.exit_code == 2 and "mlops-kit monitor nomodel" in json.loads(missing.stdout)["error"]
