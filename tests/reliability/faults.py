"""Fault-injecting wrappers around the ports (fakes, not mocks): they raise the kit's
TransientError -- what the adapters turn throttling / 5xx into -- a set number of times."""

from __future__ import annotations

from collections.abc import Callable

from mlops_kit.errors import TransientError


class Flaky:
    """Delegates to `inner`; calls to `method` whose first argument matches `when` fail
    `failures` times (a negative number: forever). `calls` counts the injected failures."""

    def __init__(self, inner, method: str, failures: int,
                 when: Callable[..., bool] = lambda *a, **k: True) -> None:
        self._inner = inner
        self._method = method
        self._left = failures
        self._when = when
        self.injected = 0

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def call(*args, **kwargs):
            if self._left != 0 and self._when(*args, **kwargs):
                self._left -= 1
                self.injected += 1
                raise TransientError(f"{name}: service unavailable (SlowDown)")
            return attr(*args, **kwargs)

        return call


def model_artifact(key, *a, **k) -> bool:
    return isinstance(key, str) and key.startswith("models/") and key.endswith(("model.onnx", "model.ort"))


def version_write(pk, sk, *a, **k) -> bool:
    return str(sk).startswith("VERSION#")


def version_completed(ops, *a, **k) -> bool:
    """A registry transaction that moves a version out of `pending` (complete_version: the
    version row and the model's summary in one transaction)."""
    return any(str(getattr(op, "sk", "")).startswith("VERSION#")
               and (getattr(op, "item", None) or {}).get("status") not in (None, "pending")
               for op in ops)
