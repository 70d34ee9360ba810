"""What the handlers share: one Backend per warm container, built on first use from the
environment (mlops_kit.settings), so the boto3 clients and the loaded model are reused."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from mlops_kit.bootstrap import Backend, build_backend

if TYPE_CHECKING:
    from mlops_kit.bootstrap import AnySettings

_backend: Backend | None = None
_lock = threading.Lock()


def backend(read_settings: Callable[[], AnySettings] | None = None) -> Backend:
    """read_settings: how the environment is read (default: pydantic's get_settings; the serve
    function passes light_settings.read_settings, which imports no pydantic)."""
    global _backend
    if _backend is None:
        with _lock:
            if _backend is None:
                _backend = build_backend(read_settings() if read_settings else None)
    return _backend


def reset() -> None:
    """Forget the backend and the settings (tests and `emulate` change the environment)."""
    global _backend
    from mlops_kit.settings import get_settings

    with _lock:
        _backend = None
        get_settings.cache_clear()
