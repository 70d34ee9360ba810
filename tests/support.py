"""Helpers shared by the tests (import as `from tests.support import ...`)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pytest
import yaml

from mlops_kit.bootstrap import Backend, local_backend
from mlops_kit.core.synthetic import CHURN_SPEC
from mlops_kit.settings import Settings

FAST_SPEC = {**CHURN_SPEC, "estimator": {"kind": "logistic_regression", "params": {}}}


def make_backend(workspace: Path, **overrides) -> Backend:
    settings = Settings(workspace=workspace, backend="local", refresh_seconds=0.0, **overrides)
    return local_backend(settings)


def apply_spec(backend: Backend, spec: dict) -> None:
    backend.ctx.store.put(f"specs/{spec['name']}.yaml", yaml.safe_dump(spec).encode())


def feature_records(n: int, seed: int = 3, drift: float = 0.0) -> list[dict]:
    from mlops_kit.core.synthetic import churn_records

    return [{k: v for k, v in r.items() if k not in ("churned", "customer_id")}
            for r in churn_records(n, seed=seed, drift=drift)]


def post_prediction(url: str, token: str | None) -> int:
    """One V1 prediction over HTTP with an optional bearer token: the status code."""
    body = json.dumps({"instances": feature_records(1)}).encode()
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers),
                                    timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def examples(ci: int) -> int:
    """A property test's example budget: all of it under the `ci` hypothesis profile (CI=1 or
    HYPOTHESIS_PROFILE=ci), a fifth of it (at least 3) under `dev` (tests/conftest.py)."""
    from hypothesis import settings

    return ci if settings.get_current_profile_name() == "ci" else max(3, ci // 5)


def chromium() -> str:
    """Debian's chromium for the browser tests: they skip without it, except in CI (.ci/run
    installs it), where a missing browser fails."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is required in CI (apt-get install -y chromium)")
    pytest.skip("chromium is not installed")


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def captured_rows(body: bytes) -> list[dict]:
    """The rows of one capture object (columnar .npz or legacy JSON lines) as dicts."""
    import json

    from mlops_kit.core.capture import codec

    if body[:len(codec.MAGIC)] == codec.MAGIC:  # the columnar format
        return codec.decode(body).to_rows()
    return [json.loads(x) for x in body.decode().splitlines() if x.strip()]


def store_captures(store, prefix: str) -> list[dict]:
    return [r for info in store.list(prefix) for r in captured_rows(store.get(info.key))]
