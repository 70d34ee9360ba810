"""One Backend per warm instance (a Functions worker, a Lambda container), built from the
settings on first use, so clients, the loaded model and the capture buffer are reused."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from mlops_kit.bootstrap import Backend, build_backend
from mlops_kit.settings import get_settings

if TYPE_CHECKING:
    from mlops_kit.bootstrap import AnySettings


class Runtime:
    """`backend` pins the backend a cloud's entry points run on (the Functions app: azure),
    whatever MLOPSKIT_BACKEND says; None takes it from the settings."""

    def __init__(self, backend: str | None = None) -> None:
        self._name = backend
        self._backend: Backend | None = None
        self._lock = threading.Lock()

    def backend(self) -> Backend:
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    settings = get_settings()
                    if self._name and settings.backend != self._name:
                        settings = settings.model_copy(update={"backend": self._name})
                    self._backend = build_backend(settings)
        return self._backend

    def settings(self) -> AnySettings:
        return self.backend().settings

    def reset(self) -> None:
        """Forget the backend and the settings (tests and the emulator change the environment)."""
        with self._lock:
            self._backend = None
            get_settings.cache_clear()
