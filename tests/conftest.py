"""Shared fixtures: a real local backend in a temp workspace, and a trained model to reuse."""

from __future__ import annotations

import os

# One BLAS/OpenMP thread per test process: the suite runs 2 xdist workers on 2 cores, and
# oversubscribed hist-gradient-boosting fits were 3x slower (14.7 s -> 5.0 s).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil  # noqa: E402
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from mlops_kit.bootstrap import Backend
from mlops_kit.core.synthetic import churn_csv
from tests.support import FAST_SPEC, apply_spec, make_backend

# Hypothesis profiles: `ci` runs each property test's full example budget (tests.support.examples),
# `dev` a fifth of it, for the inner loop. CI (CI=1, .ci/run) or HYPOTHESIS_PROFILE=ci picks ci.
settings.register_profile("ci", deadline=None, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))

# Test tiers by folder: `pytest -m unit`, `-m "not e2e"`... `make check` runs the `check` tier:
# unit tests and the local backend's adapter contract suite (not slow), under a minute.
TIERS = ("unit", "adapters", "functions", "infra", "e2e", "reliability", "emulate")
_OTHER_BACKENDS = ("s3", "dynamodb", "sqs", "blob", "azure")


def pytest_collection_modifyitems(config, items):
    root = Path(__file__).parent
    for item in items:
        try:
            tier = item.path.relative_to(root).parts[0]
        except ValueError:
            continue
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
        if item.get_closest_marker("slow"):
            continue
        params = getattr(getattr(item, "callspec", None), "id", "")
        if tier == "unit" or (item.path.name == "test_contract.py"
                              and not any(b in params for b in _OTHER_BACKENDS)):
            item.add_marker(pytest.mark.check)


def pytest_terminal_summary(terminalreporter):
    skipped = {r.nodeid for r in terminalreporter.stats.get("skipped", [])
               if "chromium is not installed" in str(r.longrepr)}
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} browser tests skipped: Chromium is not installed "
            "(Debian/Ubuntu: sudo apt-get install -y chromium; CI installs it and fails without it)",
            yellow=True, bold=True)


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
