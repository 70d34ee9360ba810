"""The light functions must not drag in what their zip leaves out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra.lambda_zips import requirements_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("function", "forbidden"), [
    ("validate", ("onnxruntime", "sklearn", "skl2onnx", "scipy")),
    ("monitor", ("onnxruntime", "sklearn", "skl2onnx", "scipy")),
    ("serve", ("sklearn", "skl2onnx", "scipy", "pyarrow", "pandas")),
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
