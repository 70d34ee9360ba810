"""Settings: the environment merged under keywords, validated as the pydantic model it replaced
did (issue 28: the serve function reads its settings without importing pydantic)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlops_kit.settings import Settings, SettingsError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for k in list(os.environ):
        if k.upper().startswith("MLOPSKIT_"):
            monkeypatch.delenv(k)


def test_keywords_over_environment_over_defaults(monkeypatch):
    monkeypatch.setenv("MLOPSKIT_BACKEND", "aws")
    monkeypatch.setenv("mlopskit_region", "eu-west-1")  # names are case-insensitive
    monkeypatch.setenv("MLOPSKIT_NOT_A_FIELD", "x")  # ignored, as extra="ignore" did
    s = Settings(region="us-east-1")
    assert (s.backend, s.region, s.refresh_seconds, s.job_runner) == ("aws", "us-east-1", 2.0, None)


def test_environment_strings_are_converted(monkeypatch):
    monkeypatch.setenv("MLOPSKIT_WORKSPACE", "/tmp/ws")
    monkeypatch.setenv("MLOPSKIT_MAX_RECEIVES", "5")
    monkeypatch.setenv("MLOPSKIT_REFRESH_SECONDS", "0.5")
    monkeypatch.setenv("MLOPSKIT_TRIAL_WORKERS", "3")
    s = Settings()
    assert s.workspace == Path("/tmp/ws") and isinstance(s.workspace, Path)
    assert (s.max_receives, s.refresh_seconds, s.trial_workers) == (5, 0.5, 3)
    assert Settings(workspace=Path("/a")).workspace == Path("/a")


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("Yes", True), ("on", True),
                                            ("1", True), ("false", False), ("no", False),
                                            ("OFF", False), ("0", False)])
def test_boolean_spellings(monkeypatch, raw, value):
    monkeypatch.setenv("MLOPSKIT_CAPTURE", raw)
    assert Settings().capture is value


@pytest.mark.parametrize(("field", "raw"), [
    ("backend", "gcp"), ("max_receives", "0"), ("serving_warm_versions", "65"),
    ("capture", "maybe"), ("refresh_seconds", "-1"), ("train_memory_fraction", "0"),
    ("trial_workers", "0"), ("job_runner", "k8s"), ("max_receives", "1.5"),
])
def test_a_bad_value_names_its_field(monkeypatch, field, raw):
    monkeypatch.setenv(f"MLOPSKIT_{field.upper()}", raw)
    with pytest.raises(SettingsError) as e:
        Settings()
    assert e.value.errors()[0]["loc"] == (field,)  # the CLI says MLOPSKIT_<FIELD>: why
    assert isinstance(e.value, ValueError)


def test_frozen_copy_and_repr_without_the_connection_string():
    s = Settings(azure_connection_string="AccountKey=secret")
    with pytest.raises(AttributeError):
        s.backend = "aws"  # type: ignore[misc]
    assert s.model_copy(update={"backend": "aws"}).backend == "aws" and s.backend == "local"
    assert "secret" not in repr(s) and "backend='local'" in repr(s)


def test_the_serve_function_reads_its_settings_without_pydantic(tmp_path):
    """Cold start (issue 28): importing the serve shell and building its backend leaves
    pydantic unimported, so the model's session starts opening before pydantic's ~60 ms."""
    root = Path(__file__).resolve().parents[2]
    code = ("import sys, serve, _wiring\n_wiring.backend()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=root / "functions",
                         env={"MLOPSKIT_BACKEND": "local", "MLOPSKIT_WORKSPACE": str(tmp_path),
                              "PYTHONPATH": str(root / "functions"), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "[]", out.stdout
