"""The read-only web console: the registry, lineage and monitoring trends in a browser.

Pages are functions returning escaped HTML over the registry and object store ports (no
cloud, no JavaScript, server-side SVG charts). `Console` is mounted by the HTTP API under /ui/,
so `mlops-kit serve` and the cloud serve function show the same console behind the same auth.
Serving imports this package only when a /ui/ path is requested.
"""

from mlops_kit.console.app import CSP, PREFIX, Console
from mlops_kit.console.sessions import Sessions

__all__ = ["CSP", "PREFIX", "Console", "Sessions"]
