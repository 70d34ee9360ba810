"""What a user gets from `pip install mlops-kit`: a real wheel built from this tree, installed
into a fresh virtual environment (no source checkout on the path, run from an empty folder).

- the base install runs the local lifecycle (spec -> upload -> train -> register -> predict);
- what needs an extra says which one, with an exit code and without a traceback;
- `invoke` and, with [emulate], `emulate` work from the wheel (the handlers ship inside it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def run(cmd, *, cwd, env=None, timeout=900, check=True):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin dir, clean env, an empty working folder) with the wheel installed, no extras."""
    base = tmp_path_factory.mktemp("pip")
    src = base / "src"  # build from a copy: nothing lands in the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache",
        ".mlops-kit", "node_modules"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", base / "dist", src],
        cwd=base)
    wheel, = (base / "dist").glob("mlops_kit-*.whl")
    venv.EnvBuilder(with_pip=True).create(base / "venv")
    bindir = base / "venv" / "bin"
    run([bindir / "python", "-m", "pip", "install", "--quiet", wheel], cwd=base)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLOPSKIT_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    work = base / "work"
    work.mkdir()
    return bindir, env, work, wheel


def test_base_install_runs_the_local_lifecycle(installed):
    bindir, env, work, _ = installed
    mk = bindir / "mlops-kit"
    helptext = run([mk, "--help"], cwd=work, env=env).stdout
    assert "Exit codes" in helptext and "upload" in helptext
    shutil.copy(ROOT / "examples" / "churn.yaml", work)
    shutil.copy(ROOT / "examples" / "churn-small.csv", work)
    run([mk, "spec", "apply", "churn.yaml"], cwd=work, env=env)
    up = run([mk, "upload", "churn-small.csv", "-m", "churn", "--json"], cwd=work, env=env)
    statuses = [r["status"] for r in json.loads(up.stdout)["results"]]
    assert statuses == ["validated", "registered"], up.stderr
    assert "promoted to champion" in up.stderr  # progress on stderr, JSON alone on stdout

    # `invoke` runs the serve handler shipped in the wheel (no ./functions here)
    invoked = run([mk, "invoke", "serve", "-e", ROOT / "events" / "http-api-v2-predict.json",
                   "--json"], cwd=work, env=env)
    response = json.loads(invoked.stdout)
    assert response["statusCode"] == 200
    assert len(json.loads(response["body"])["predictions"]) == 2
    where = run([bindir / "python", "-c", "from mlops_kit.emulate import functions_dir; "
                 "print(functions_dir())"], cwd=work, env=env).stdout.strip()
    assert where.endswith(os.path.join("site-packages", "mlops_kit", "_functions"))
    azure_app = run([bindir / "python", "-c", "from mlops_kit.emulate.azure_functions import "
                     "app_dir; print(app_dir())"], cwd=work, env=env).stdout.strip()
    assert azure_app.endswith(os.path.join("mlops_kit", "_functions", "azure"))


def test_what_needs_an_extra_names_it(installed):
    bindir, env, work, _ = installed
    mk = bindir / "mlops-kit"
    r = run([mk, "registry", "list"], cwd=work, check=False,
            env={**env, "MLOPSKIT_BACKEND": "aws", "MLOPSKIT_REGION": "eu-west-1"})
    assert r.returncode == 2 and "pip install 'mlops-kit[aws]'" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    r = run([mk, "emulate", "--json"], cwd=work, env=env, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "pip install 'mlops-kit[emulate]'" in r.stderr
    assert json.loads(r.stdout)["code"] == "environment"


def test_emulate_extra_makes_emulate_work_from_the_wheel(installed, tmp_path):
    bindir, env, work, wheel = installed
    run([bindir / "python", "-m", "pip", "install", "--quiet", f"{wheel}[emulate]"], cwd=work)
    log = tmp_path / "emulate.log"
    with open(log, "w") as errf:
        proc = subprocess.Popen([bindir / "mlops-kit", "emulate", "--json"], cwd=work, text=True,
                                env={**env, "AWS_ACCESS_KEY_ID": "testing",
                                     "AWS_SECRET_ACCESS_KEY": "testing"},
                                stdout=subprocess.PIPE, stderr=errf)
    try:
        line = proc.stdout.readline()
        assert line, log.read_text()
        info = json.loads(line)
        assert info["inference_url"].startswith("http://127.0.0.1:")
        assert info["data_bucket"] and info["table"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert "Traceback" not in log.read_text()
