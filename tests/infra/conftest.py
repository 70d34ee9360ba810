"""Fixtures for the infra tests: prebuilt stand-in zips and the default stack's graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.harness import Graph, base_config, make_zips, run_program


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory) -> Path:
    return make_zips(tmp_path_factory.mktemp("lambda"))


@pytest.fixture(scope="session")
def graph(package_dir) -> Graph:
    """The default stack (authMode iam), rendered once for all graph tests."""
    return run_program(base_config(package_dir))
