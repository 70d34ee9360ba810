"""Fixtures for the reliability suite: a served trained model (module-scoped, so hypothesis can
reuse it), and the AWS path under moto driven through the real handlers."""

from __future__ import annotations

import shutil

import pytest

from mlops_kit.local.auth import ensure_token
from tests.support import FAST_SPEC, make_backend


@pytest.fixture(scope="module")
def served(tmp_path_factory, _trained_template):
    """(backend, api, token) for a trained churn model with auth on; one per test module."""
    from mlops_kit.local.server import build_api

    ws = tmp_path_factory.mktemp("served") / "ws"
    shutil.copytree(_trained_template, ws)
    backend = make_backend(ws)
    token = ensure_token(ws)
    assert token
    return backend, build_api(backend, auth=True, workspace=ws), token


@pytest.fixture(scope="module")
def server(served):
    from mlops_kit.local.server import ServerThread

    backend, api, token = served
    srv = ServerThread(api).start()
    yield srv, token, backend
    srv.stop()


@pytest.fixture
def cloud():
    """The AWS path under moto with IAM enforced (tests.moto_support.aws_world): the topology
    rendered in-process, the real handlers in functions/ each under its own role, and SQS
    event-source pumps (failed messages come back at once); the churn spec uploaded."""
    from tests.moto_support import aws_world

    with aws_world(spec=FAST_SPEC) as world:
        yield world
