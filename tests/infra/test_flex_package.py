"""The Azure Functions package (`make package-azure`, infra/flex_package.py): issue 25, item 6.
Nothing built or published the Flex package; functions/azure/requirements.txt listed only
azure-functions, so after `pulumi up` the apps had no code and no dependencies. pip is stubbed
here (the wheels are the lock's; a real build downloads ~300 MB)."""

from __future__ import annotations

import re
import tomllib
import zipfile
from pathlib import Path

import pytest

from infra import flex_package
from infra.azure_stack.config import AzureConfig

ROOT = Path(__file__).resolve().parents[2]


def _dist(line: str) -> str:
    return re.split(r"[=<>\[ ;]", line, maxsplit=1)[0].lower().replace("_", "-")


def test_the_lock_pins_everything_the_app_imports():
    """requirements/azure-functions.txt: every base dependency and the azure extra, pinned
    (`==`), for Linux; made by `make lock` like the other locks."""
    lock = [ln for ln in flex_package.LOCK.read_text().splitlines()
            if ln and not ln.startswith((" ", "#"))]
    assert lock and all("==" in ln for ln in lock)
    pinned = {_dist(ln) for ln in lock}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_dist(r) for r in project["dependencies"] + project["optional-dependencies"]["azure"]}
    assert wanted <= pinned, wanted - pinned
    assert not any(_dist(ln) == "mlops-kit" for ln in lock)  # ours comes from src/, not PyPI
    assert "pywin32" not in pinned  # resolved for Linux, not this machine's platform
    make = (ROOT / "Makefile").read_text()
    assert "-o requirements/azure-functions.txt" in make.split("\nlock:", 1)[1].split("\n\n")[0]
    assert "--python-platform x86_64-manylinux" in make


def test_pip_takes_linux_wheels_of_the_lock_for_the_stacks_python(tmp_path):
    cmd = flex_package.pip_command(tmp_path)
    assert AzureConfig(location="x", name_prefix="x").python_version == flex_package.PYTHON_VERSION
    assert cmd[cmd.index("--python-version") + 1] == flex_package.PYTHON_VERSION
    assert {cmd[i + 1] for i, a in enumerate(cmd) if a == "--platform"} >= {"manylinux2014_x86_64"}
    assert "--only-binary=:all:" in cmd and "--no-deps" in cmd
    assert cmd[cmd.index("-r") + 1] == str(flex_package.LOCK)


@pytest.fixture
def stub_pip(monkeypatch):
    calls = []

    def run(cmd, check):
        calls.append(cmd)
        target = Path(cmd[cmd.index("--target") + 1])
        (target / "sklearn").mkdir(parents=True)
        (target / "sklearn" / "__init__.py").write_text("")
        (target / "bin").mkdir()
        (target / "bin" / "f2py").write_text("#!/usr/bin/python\n")

    monkeypatch.setattr(flex_package.subprocess, "run", run)
    return calls


def test_the_package_holds_the_app_its_dependencies_and_the_kit(tmp_path, stub_pip, capsys):
    assert flex_package.main(["--out", str(tmp_path)]) == 0
    assert len(stub_pip) == 1
    with zipfile.ZipFile(tmp_path / "package.zip") as zf:
        names = set(zf.namelist())
    site = flex_package.SITE_PACKAGES
    assert {"function_app.py", "host.json"} <= names  # at the root, where the host looks
    assert f"{site}/sklearn/__init__.py" in names
    assert f"{site}/mlops_kit/topology.py" in names
    assert f"{site}/mlops_kit/adapters/azure/store.py" in names
    assert not any(n.startswith(f"{site}/bin/") or n.endswith(".pyc") for n in names)
    out = capsys.readouterr().out
    assert "limit" in out and "zipped" in out and "unzipped" in out


def test_the_package_is_reproducible_and_refused_over_the_limit(tmp_path, stub_pip):
    a = flex_package.build(tmp_path / "a", install_deps=False)
    b = flex_package.build(tmp_path / "b", install_deps=False)
    assert a.sha256 == b.sha256
    with pytest.raises(flex_package.PackageTooLarge, match="over the limit"):
        flex_package.build(tmp_path / "c", install_deps=False, limit=1024)
