"""The Azurite harness: installs once, starts on free loopback ports, stops cleanly."""

from __future__ import annotations

import pytest

from mlops_kit.emulate import azurite as az
from mlops_kit.errors import MlopsKitError


def test_starts_on_loopback_and_stops_cleanly():
    with az.running() as emu:
        assert all(az._listening(az.HOST, p) for p in emu.ports.values())
        assert len(set(emu.ports.values())) == 3
        assert f"BlobEndpoint=http://127.0.0.1:{emu.ports['blob']}/devstoreaccount1" in \
            emu.connection_string
        from azure.storage.queue import QueueServiceClient

        svc = QueueServiceClient.from_connection_string(emu.connection_string)
        svc.create_queue("harness")
        assert [q.name for q in svc.list_queues()] == ["harness"]
    assert emu.process.returncode is not None  # the process is gone, not orphaned
    assert not any(az._listening(az.HOST, p) for p in emu.ports.values())
    assert not emu.location.exists()  # the throwaway --location is removed


def test_install_is_reused_and_versioned():
    exe = az.install()
    assert exe.exists() and az.installed_version(az.cache_dir()) == az.VERSION
    assert az.install() == exe  # the second call does not run npm again


def test_missing_npm_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(az.shutil, "which", lambda name: None)
    with pytest.raises(MlopsKitError, match="node \\(20\\) and npm"):
        az.install(cache=tmp_path / "cache")


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPSKIT_CACHE_DIR", str(tmp_path))
    assert az.cache_dir() == tmp_path / "azurite"
    monkeypatch.delenv("MLOPSKIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert az.cache_dir() == tmp_path / "xdg" / "mlops-kit" / "azurite"
