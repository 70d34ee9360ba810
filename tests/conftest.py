"""Shared fixtures: a real local backend in a temp workspace, and a trained model to reuse."""

from __future__ import annotations

import os

# One BLAS/OpenMP thread per test process: the suite runs 2 xdist workers on 2 cores, and
# oversubscribed hist-gradient-boosting fits were 3x slower (14.7 s -> 5.0 s).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil  # noqa: E402
from pathlib import Path

import pytest

from mlops_kit.bootstrap import Backend
from mlops_kit.core.synthetic import churn_csv
from tests.support import FAST_SPEC, apply_spec, make_backend


@pytest.fixture
def backend(tmp_path) -> Backend:
    return make_backend(tmp_path / "ws")


@pytest.fixture(scope="session")
def _trained_template(tmp_path_factory) -> Path:
    """One workspace with churn v1 trained + promoted; tests get their own copy."""
    from mlops_kit.local.worker import run_once, upload

    ws = tmp_path_factory.mktemp("trained") / "ws"
    b = make_backend(ws)
    apply_spec(b, FAST_SPEC)
    data = ws.parent / "churn.csv"
    data.write_bytes(churn_csv(1500, seed=7))
    upload(b, data, "churn")
    results = run_once(b)
    assert any(r.get("promoted") for r in results), results
    return ws


@pytest.fixture
def trained(tmp_path, _trained_template) -> Backend:
    ws = tmp_path / "ws"
    shutil.copytree(_trained_template, ws)
    return make_backend(ws)



@pytest.fixture
def aws():
    """A bare in-process moto account with fresh boto3 clients (tests.moto_support)."""
    from tests.moto_support import moto_account

    with moto_account():
        yield


@pytest.fixture(scope="session")
def azurite():
    """One Azurite per test session (per xdist worker) on free loopback ports. npm installs
    azurite@3.35.0 into ~/.cache/mlops-kit the first time (`make test` does it up front)."""
    from mlops_kit.emulate.azurite import running

    with running() as emu:
        yield emu


@pytest.fixture(scope="session")
def lifecycle_workspace(tmp_path_factory) -> dict:
    """Three models with a real history (retrain on drift, rollback, canary, shadow, monitoring
    runs, labels, XSS payloads in user strings): see tests/lifecycle.py. Built once per worker;
    treat it as read-only."""
    from tests.lifecycle import build_console_workspace

    return build_console_workspace(tmp_path_factory.mktemp("lifecycle") / "ws")
