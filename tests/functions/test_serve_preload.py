"""The serve function's first-request preload on AWS (moto, IAM enforced): the background
thread reads the registry and the artifact under serve's own role, as the handler would (the
emulator's per-function identity is a context variable the thread inherits), and its session
is the one that answers. Issue 28, cold start."""

from __future__ import annotations

import json
import sys

import pytest

from tests.safe_change import copy_versions


@pytest.mark.iam_enforced
def test_lambda_serve_preloads_under_its_own_role_and_answers_with_that_session(trained,
                                                                                monkeypatch):
    from mlops_kit.adapters.aws import _clients
    from mlops_kit.core.serving import loader
    from mlops_kit.emulate import context_for
    from mlops_kit.emulate.aws_events import http_api_event
    from tests.moto_support import aws_world
    from tests.support import feature_records

    with aws_world() as w:
        copy_versions(trained, w.backend.ctx, versions=(1,))
        serve_key = w.res.identities["serve"].access_key_id
        before = set(_clients._cache)
        acting = []  # who the preload thread acts as when it reads the artifact

        def open_artifact(*args, **kwargs):
            who = _clients.current_identity()
            acting.append(who.access_key_id if who else None)
            return real(*args, **kwargs)

        real = loader.open_artifact
        monkeypatch.setattr(loader, "open_artifact", open_artifact)
        event = http_api_event("POST", "/v1/models/churn:predict",
                               {"content-type": "application/json"},
                               json.dumps({"instances": feature_records(2)}).encode())
        out = w.fns["serve"].handler(event, context_for(w.topo, "serve"))
        assert out["statusCode"] == 200, out
        assert json.loads(out["body"])["version"] == 1
        backend = sys.modules["_wiring"].backend()
        preloaded = backend.preloaded
        assert preloaded is not None and preloaded.thread.name == "mlops-kit-preload"
        assert preloaded.wait(30) == {}  # opened, then taken by the model cache
        champion, _ = w.fns["serve"].module.api().service.predictor("churn")
        assert champion.optimized  # model.ort, read and checked on the thread
        assert acting == [serve_key]  # the thread read model.ort under serve's role
        made = set(_clients._cache) - before
        assert {k[0] for k in made} >= {"s3", "dynamodb"}
        assert {k[3] for k in made} == {serve_key}  # every client made: serve's role
