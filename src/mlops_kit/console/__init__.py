"""The read-only web console: the registry, lineage and monitoring trends in a browser.

Pages are functions returning escaped HTML over the registry and object store ports (no
cloud, no JavaScript, server-side SVG charts). `Console` is mounted by the HTTP API under /ui/,
so `mlops-kit serve` and the cloud serve function show the same console behind the same auth.
Serving imports this package only when a /ui/ path is requested.

The names below are imported on first use (PEP 562): the console sign-in functions on AWS
(console/signin.py, run by the cookie authorizer on every console page) import this package
but none of the pages, so they never load onnxruntime and numpy (1 s of cold start, measured).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_kit.console.app import CSP, PREFIX, Console
    from mlops_kit.console.sessions import Sessions

__all__ = ["CSP", "PREFIX", "Console", "Sessions"]
_WHERE = {"CSP": "app", "PREFIX": "app", "Console": "app", "Sessions": "sessions"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
