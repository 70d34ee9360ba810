"""`mlops-kit emulate --cloud azure` as a user runs it: a subprocess that starts Azurite itself
and prints one JSON line; an unmodified azure-storage-blob client uploads a spec and a
dataset with the printed connection string; curl (a subprocess) queries the served champion
with the printed token."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("azure.functions")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    log = tmp_path_factory.mktemp("emulate-azure") / "stderr.log"
    env = {**os.environ, "MLOPSKIT_REFRESH_SECONDS": "1", "OMP_NUM_THREADS": "1"}
    with open(log, "w") as err:  # a file, not a pipe: nobody reads it while the test runs
        proc = subprocess.Popen([str(BIN / "mlops-kit"), "emulate", "--cloud", "azure",
                                 "--retry-after", "1"],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        line = proc.stdout.readline()  # the one JSON line, printed when everything is up
        assert line, log.read_text()
        yield proc, json.loads(line), log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def curl(url, body=None, token=None):
    args = ["curl", "-sS", "-w", "\n%{http_code}", url]
    if body is not None:
        args += ["-X", "POST", "-H", "content-type: application/json", "-d", json.dumps(body)]
    if token:
        args += ["-H", f"authorization: Bearer {token}"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text, _, code = out.stdout.rpartition("\n")
    return int(code), json.loads(text) if text else None


def test_blob_upload_then_curl_predicts_from_the_champion(emulator):
    from azure.storage.blob import BlobServiceClient

    from mlops_kit.core.synthetic import churn_csv
    from tests.support import FAST_SPEC, feature_records

    proc, info, log = emulator
    assert {"connection_string", "containers", "queues", "table", "inference_url", "token",
            "functions"} <= set(info)
    assert info["connection_string"].count("127.0.0.1") == 3  # Azurite, on loopback only
    assert {"validate", "train", "monitor", "serve_post_v1_models_model_predict"} <= \
        set(info["functions"])

    service = BlobServiceClient.from_connection_string(info["connection_string"])
    data = service.get_container_client(info["containers"]["data"])
    data.upload_blob("specs/churn.yaml", yaml.safe_dump(FAST_SPEC))
    data.upload_blob("datasets/churn/first upload.csv", churn_csv(800, seed=5))

    url = f"{info['inference_url']}/v1/models/churn:predict"
    body = {"instances": feature_records(2, seed=8)}
    deadline, status, out = time.monotonic() + 120, 0, None
    while time.monotonic() < deadline:
        status, out = curl(url, body, info["token"])
        if status == 200:
            break
        assert status == 404 and out["field"] == "model", out  # no champion yet
        time.sleep(0.5)
    assert status == 200, f"no champion served within 120 s: {log.read_text()[-3000:]}"
    assert out["model"] == "churn" and out["version"] == 1 and len(out["predictions"]) == 2
    assert curl(url, body) == (401, None)  # no token: refused before any function runs
    assert curl(url, body, "mk_wrong") == (401, None)
    assert proc.poll() is None
