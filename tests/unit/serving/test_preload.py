"""Sessions opened ahead of the model cache (issue 28, cold start): the serve function's first
request starts its model's champion session on a background thread (Backend.preload) before it
imports the serving stack; the cache takes it only when it loads that very version, and every
check of a normal load still holds (registry pick, sha256, alias moves, errors)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_kit.core.serving.loader import Preloaded
from mlops_kit.errors import NotFound
from tests.support import feature_records

ROOT = Path(__file__).resolve().parents[3]


def _artifact(preloaded: Preloaded, model: str, version: int):
    opened = preloaded.wait(30)[(model, version)]
    if isinstance(opened, BaseException):
        raise opened
    return opened


def test_the_preloaded_session_is_the_one_served_and_answers_as_a_normal_load(trained):
    preloaded = trained.preload(["churn"])
    assert preloaded is not None
    artifact = _artifact(preloaded, "churn", 1)
    assert list(preloaded.wait()) == [("churn", 1)]  # the champion (no challenger here)
    assert artifact.optimized and artifact.sha256 == trained.ctx.registry.get_version(
        "churn", 1)["ort_sha256"]
    service = trained.service(capture=False)
    records = feature_records(5)
    out = service.predict("churn", records)
    champion, _ = service.predictor("churn")
    assert champion.session is artifact.session  # taken, not opened a second time
    assert preloaded.wait() == {}  # taken once: the cache holds it from now on
    trained.preloaded = None
    plain = trained.service(capture=False).predict("churn", records)
    assert {k: out[k] for k in ("predictions", "probabilities", "version")} == {
        k: plain[k] for k in ("predictions", "probabilities", "version")}


def test_a_session_is_handed_over_only_for_the_version_and_sha256_it_was_read_for(trained):
    preloaded = trained.preload(["churn"])
    record = trained.ctx.registry.get_version("churn", 1)
    assert preloaded.take("churn", 2, record) is None  # another version: never preloaded
    assert preloaded.take("churn", 1, {**record, "ort_sha256": "0" * 64}) is None
    assert preloaded.take("churn", 1, record) is None  # each session is handed over once


def test_a_champion_promoted_after_the_preload_is_loaded_by_the_cache(trained):
    from mlops_kit.core.synthetic import churn_csv
    from mlops_kit.local.worker import put_object, run_once

    preloaded = trained.preload(["churn"])
    put_object(trained, "datasets/churn/again.csv", churn_csv(900, seed=41))
    assert run_once(trained)[-1]["status"] == "registered"
    reg = trained.ctx.registry
    if reg.champion_version("churn") != 2:
        reg.set_alias("churn", "champion", 2, actor="t", reason="test", action="promote",
                      expected=reg.champion_version("churn"))
    service = trained.service(capture=False)
    assert service.predict("churn", feature_records(1))["version"] == 2
    champion, _ = service.predictor("churn")
    assert champion.session is not _artifact(preloaded, "churn", 1).session
    assert list(preloaded.wait()) == [("churn", 1)]  # the stale preload was never used


def test_a_failed_preload_is_not_fatal_and_the_cache_reports_its_own_error(trained, caplog):
    """A tampered model.ort: the preload fails quietly (logged, no alert); the cache's own load
    refuses it and alerts once, exactly as without a preload; restored, it is served."""
    store = trained.ctx.store
    key = "models/churn/000001/model.ort"
    original = store.get(key)
    i = len(original) // 2
    store.put(key, original[:i] + bytes([original[i] ^ 0x01]) + original[i + 1:])
    preloaded = trained.preload(["churn"])
    with pytest.raises(Exception, match="sha256"):
        _artifact(preloaded, "churn", 1)
    service = trained.service(capture=False)
    with pytest.raises(NotFound):
        service.predict("churn", feature_records(1))
    alerts = [n["message"] for n in trained.ctx.notifier.messages()
              if n["message"].get("event") == "integrity_error"]
    assert len(alerts) == 1 and alerts[0]["version"] == 1
    assert any("preload churn v1 failed" in r.getMessage() for r in caplog.records)
    store.put(key, original)
    service.invalidate()
    assert service.predict("churn", feature_records(1))["version"] == 1


def test_preloading_an_unknown_model_or_a_broken_registry_never_raises(trained):
    assert trained.preload(["nobody"]).wait(30) == {}
    trained.ctx.registry.table = None  # every read fails
    preloaded = trained.preload(["churn"])
    assert preloaded.wait(30) == {}
    assert preloaded.take("churn", 1, {}) is None


def test_the_serve_functions_first_request_preloads_its_model_only(trained):
    """In a new process, as a cold Lambda: the first request for a model starts that model's
    session before the serving stack is imported, and the cache takes it. A pinned-version
    request preloads nothing (it is not the champion that answers)."""
    event = json.loads((ROOT / "events" / "http-api-v2-predict.json").read_text())
    code = (
        f"import sys, json; sys.path.insert(0, {str(ROOT / 'functions')!r}); import serve\n"
        "import _wiring\n"
        "b = _wiring.backend()\n"
        "before = 'mlops_kit.core.serving.http_api' in sys.modules\n"
        "orig = type(b).preload\n"
        "seen = []\n"
        "def spy(self, models):\n"
        "    seen.append([models, 'mlops_kit.core.serving.http_api' in sys.modules])\n"
        "    return orig(self, models)\n"
        "type(b).preload = spy\n"
        f"out = serve.handler(json.loads({json.dumps(event)!r}), None)\n"
        "p = b.preloaded\n"
        "print(json.dumps([out['statusCode'], before, seen, len(p.wait()), p.thread.name]))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "MLOPSKIT_BACKEND": "local",
           "MLOPSKIT_WORKSPACE": str(trained.settings.workspace)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    status, before, seen, left, thread = json.loads(r.stdout.strip().splitlines()[-1])
    assert status == 200 and before is False
    assert seen == [[["churn"], False]]  # before the serving stack was imported
    assert left == 0 and thread == "mlops-kit-preload"


@pytest.mark.parametrize(("path", "model"), [
    ("/v1/models/churn:predict", "churn"),
    ("/v2/models/churn/infer", "churn"),
    ("/v2/models/churn", "churn"),
    ("/v2/models/churn/versions/3/infer", None),
    ("/v1/models/churn/versions/3:predict", None),
    ("/v2/health/ready", None),
    ("/ui/", None),
])
def test_which_first_requests_preload(path, model):
    from mlops_kit.emulate.lambda_functions import load_function

    assert load_function("serve").champion_request(path) == model
