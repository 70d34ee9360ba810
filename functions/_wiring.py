"""What the handlers share: one Backend per warm container, built on first use from the
environment (mlops_kit.settings), so the boto3 clients and the loaded model are reused."""

from __future__ import annotations

import threading

from mlops_kit.bootstrap import Backend, build_backend
from mlops_kit.settings import get_settings

_backend: Backend | None = None
_lock = threading.Lock()


def backend() -> Backend:
    global _backend
    if _backend is None:
        with _lock:
            if _backend is None:
                _backend = build_backend(get_settings())
    return _backend


def reset() -> None:
    """Forget the backend and the settings (tests and `emulate` change the environment)."""
    global _backend
    with _lock:
        _backend = None
        get_settings.cache_clear()
