"""Dockerfile.serve builds and runs (issue 24): non-root, read-only root filesystem, healthy on
/v2/health/ready, predicts with the workspace's token, and stops on SIGTERM with exit code 0.
Runs only where a docker daemon answers; skipped otherwise."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from mlops_kit.local.auth import rotate_token
from tests.support import post_prediction

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _docker_ok() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.skipif(not _docker_ok(), reason="no docker daemon")
def test_serve_image_builds_runs_read_only_and_stops_cleanly(trained, tmp_path):
    tag = "mlops-kit-serve:test"
    subprocess.run(["docker", "build", "-f", "Dockerfile.serve", "-t", tag, "."], cwd=ROOT,
                   check=True, timeout=1800)
    ws = Path(trained.settings.workspace)
    token = rotate_token(ws)
    subprocess.run(["chmod", "-R", "a+rwX", str(ws)], check=True)  # uid 10001 writes captures
    name = f"mk-serve-{int(time.time())}"
    subprocess.run(["docker", "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
                    "-v", f"{ws}:/data", "-p", "127.0.0.1::8080", tag], check=True, timeout=60)
    try:
        port = subprocess.run(["docker", "port", name, "8080"], capture_output=True, text=True,
                              check=True).stdout.strip().rsplit(":", 1)[1]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            health = json.loads(subprocess.run(
                ["docker", "inspect", "-f", "{{json .State.Health}}", name],
                capture_output=True, text=True).stdout or "null")
            if health and health["Status"] == "healthy":
                break
            assert time.monotonic() < deadline, health
            time.sleep(1)
        with urllib.request.urlopen(url + "/v2/health/ready", timeout=10) as r:
            assert r.status == 200
        assert post_prediction(url + "/v1/models/churn:predict", token) == 200
        assert post_prediction(url + "/v1/models/churn:predict", None) == 401
        user = subprocess.run(["docker", "exec", name, "id", "-u"], capture_output=True,
                              text=True).stdout.strip()
        assert user == "10001"
        subprocess.run(["docker", "stop", "-t", "40", name], check=True, timeout=90)
        code = subprocess.run(["docker", "inspect", "-f", "{{.State.ExitCode}}", name],
                              capture_output=True, text=True).stdout.strip()
        assert code == "0"
        assert list((ws / "store" / "captures" / "churn").rglob("*.cap"))  # flushed on stop
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
