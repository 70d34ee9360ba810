"""The light functions must not drag in what their zip leaves out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra.lambda_zips import requirements_for
from tests.functions.conftest import sample

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("function", "forbidden"), [
    ("validate", ("onnxruntime", "sklearn", "skl2onnx", "scipy")),
    ("monitor", ("onnxruntime", "sklearn", "skl2onnx", "scipy")),
    # cold start (issue 28): nothing the first prediction does not need; boto3 comes with the
    # first client, on the first request; settings without pydantic (light_settings)
    ("serve", ("sklearn", "skl2onnx", "scipy", "pyarrow", "pandas", "yaml", "boto3", "botocore",
               "mlops_kit.core.training", "mlops_kit.console", "difflib", "msgspec",
               "pydantic", "mlops_kit.settings", "mlops_kit.core.spec")),
    # batch job state changes: the registry and the notifier only (issue 15)
    ("jobs", ("onnxruntime", "sklearn", "skl2onnx", "scipy", "pyarrow", "pandas")),
])
def test_handler_imports_stay_light(function, forbidden):
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'functions')!r}); import {function};"
        f"bad = [m for m in {forbidden!r} if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "MLOPSKIT_BACKEND": "aws"})
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_console_authorizer_loads_no_model_runtime_and_no_jose():
    """The cookie authorizer runs before every console page (caching off): it imports neither
    the serving stack (onnxruntime, numpy: ~1 s of cold start, measured) nor PyJWT and
    cryptography, which only the sign-in callback needs."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'functions')!r}); import console_signin;"
        "bad = [m for m in ('onnxruntime', 'numpy', 'jwt', 'cryptography', 'mlops_kit.console.app')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "MLOPSKIT_BACKEND": "aws"})
    assert r.returncode == 0, r.stdout + r.stderr


def _names(function):
    return [r.split(">")[0].split("=")[0] for r in requirements_for(function)]


def test_zip_requirements_leave_out_onnxruntime():
    assert "onnxruntime" not in _names("monitor") and "pyarrow" in _names("monitor")
    assert "onnxruntime" in _names("serve")
    # validate scores scoring/ uploads (imported only when one arrives: the test above)
    assert {"onnxruntime", "pyarrow"} <= set(_names("validate"))


def test_serve_imports_the_console_only_for_ui_paths(tmp_path):
    code = (
        f"import sys, json; sys.path.insert(0, {str(ROOT / 'functions')!r}); import serve\n"
        "def get(path):\n"
        "    return serve.handler({'rawPath': path, 'requestContext': {'http': {'method': 'GET'}},"
        " 'headers': {}}, None)['statusCode']\n"
        "a = get('/v2/health/ready'); b = get('/v1/models/none')\n"
        "before = 'mlops_kit.console' in sys.modules\n"
        "c = get('/ui/')\n"
        "print(json.dumps([a, b, before, c, 'mlops_kit.console' in sys.modules]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "MLOPSKIT_BACKEND": "local",
                            "MLOPSKIT_WORKSPACE": str(tmp_path / "ws")})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[200, 404, false, 200, true]"


# What the serve function's first prediction may not load (issue 28, cold start): training,
# the console, the data-file readers, YAML, an error hint's difflib, and pydantic (settings and
# the champion's spec are read by light_settings and spec_light: ~60-90 ms of CPU less)
NOT_FOR_A_PREDICTION = ("sklearn", "skl2onnx", "scipy", "pyarrow", "pandas", "yaml",
                        "mlops_kit.core.training", "mlops_kit.console", "difflib", "boto3",
                        "pydantic", "mlops_kit.settings", "mlops_kit.core.spec")


def test_serves_its_first_prediction_without_training_or_the_console(trained):
    """Import, build the backend, load the champion and answer a V1 request in a new process,
    as a cold Lambda does; then nothing of NOT_FOR_A_PREDICTION is loaded. trials=queue is
    what the cloud backends resolve `auto` to (bootstrap.experiment_engine)."""
    event = sample("http-api-v2-predict.json")
    code = (
        f"import sys, json; sys.path.insert(0, {str(ROOT / 'functions')!r}); import serve\n"
        f"out = serve.handler(json.loads({json.dumps(event)!r}), None)\n"
        f"bad = [m for m in {NOT_FOR_A_PREDICTION!r} if m in sys.modules]\n"
        "print(json.dumps([out['statusCode'], bad]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "MLOPSKIT_BACKEND": "local",
                            "MLOPSKIT_TRIALS": "queue",
                            "MLOPSKIT_WORKSPACE": str(trained.settings.workspace)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[200, []]"


def test_the_aws_backend_creates_no_client_before_a_request():
    """Building the serve function's backend and service on aws reads settings only: no boto3
    session or client (made on first use, adapters/aws/_clients.py: the first request needs
    only S3 and DynamoDB, never SQS or SNS), and the training package stays out (the cloud
    backends queue trials)."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'functions')!r}); import serve\n"
        "serve.api()\n"
        "from mlops_kit.adapters.aws import _clients\n"
        "bad = [m for m in ('mlops_kit.core.training', 'mlops_kit.console', 'pydantic')"
        " if m in sys.modules]\n"
        "made = _clients._session is not None or bool(_clients._cache)\n"
        "print(bad, made); sys.exit(1 if bad or made else 0)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "MLOPSKIT_BACKEND": "aws", "MLOPSKIT_REGION": "eu-west-1",
           "MLOPSKIT_DATA_BUCKET": "d", "MLOPSKIT_ARTIFACT_BUCKET": "a",
           "MLOPSKIT_TABLE_NAME": "t",
           "MLOPSKIT_VALIDATE_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/v",
           "MLOPSKIT_TRAIN_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/t"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
