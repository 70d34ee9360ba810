"""What each console page reads, through the registry and the object store ports only.

Reads are bounded per page whatever the number of models and versions: the models list is
one query (every model's summary, on the model index: core/registry/summary.py); a model page
is its summary (aliases, version counts, the newest history and monitoring runs), one query of
its newest VERSIONS_LIMIT versions (the page says how many older ones it leaves out) and one of
its experiment runs. Objects that never change once written (a version's model card:
artifacts are immutable) are kept in a small LRU cache.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from datetime import timedelta
from typing import Any

from mlops_kit.core import layout
from mlops_kit.core.registry import Registry
from mlops_kit.core.registry import summary as summaries
from mlops_kit.core.registry.contract import contract_view
from mlops_kit.core.registry.experiments import RunStore
from mlops_kit.core.registry.summary import primary_metric
from mlops_kit.core.serving.health import read_health
from mlops_kit.errors import MlopsKitError, NotFound
from mlops_kit.ports import ObjectStore

__all__ = ["ConsoleData", "primary_metric"]


class _Lru:
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class ConsoleData:
    def __init__(self, store: ObjectStore, registry: Registry, *, cache_size: int = 1024) -> None:
        self.store = store
        self.registry = registry
        self._cards = _Lru(cache_size)

    # -- the models list --------------------------------------------------------------------
    def overview(self) -> list[dict[str, Any]]:
        """Every model's compact summary (latest, aliases, champion metric, last monitoring
        run), by name: one query."""
        return sorted(self.registry.summaries(), key=lambda s: s["model"])

    # -- one model --------------------------------------------------------------------------
    def model(self, name: str) -> dict[str, Any]:
        layout.check_name(name)
        versions = self.registry.list_versions(name, newest=summaries.VERSIONS_LIMIT)
        if not versions:
            raise NotFound(f"model {name!r} is not in the registry", field="model")
        s = self.registry.summary(name)
        counts = s["counts"]
        return {"model": name, "versions": versions, "counts": counts,
                "older": max(0, sum(counts.values()) - len(versions)), "aliases": s["aliases"],
                "history": s["history"], "history_total": s["history_total"],
                "monitoring": s["monitoring"], "runs": self.runs(name)}

    def runs(self, name: str) -> list[dict[str, Any]]:
        """Experiment runs (a spec with `search`), oldest first: one query."""
        return RunStore(self.registry.table, self.registry.clock).list_runs(name)

    def run_html(self, name: str, run: int) -> bytes:
        """The run's page, written beside the version's artifacts when the run ends."""
        try:
            return self.store.get(layout.artifact_key(name, run, "run.html"))
        except MlopsKitError:
            raise NotFound(f"model {name!r} has no finished run {run}", field="run") from None

    # -- one version ------------------------------------------------------------------------
    def version(self, name: str, version: int) -> dict[str, Any]:
        layout.check_name(name)
        record = self.registry.get_version(name, version)
        history = [h for h in self.registry.history(name)
                   if version in (h.get("to_version"), h.get("from_version"))]
        return {"model": name, "record": record, "card": self.card(name, version),
                "aliases": self.registry.aliases(name), "history": history,
                "contract": contract_view(self.registry, name, version, record),
                "health": self.health(name, version)}

    def health(self, name: str, version: int, hours: int = 24) -> dict[str, Any] | None:
        """The version's serving health over the last day; None where this function may not
        read the counters (the monitoring report carries them too)."""
        end = self.registry.clock.now()
        try:
            h = read_health(self.store, name, end - timedelta(hours=hours), end)
        except MlopsKitError:
            return None
        return {"hours": hours, **(h["versions"].get(str(version)) or {"requests": 0})}

    def card(self, name: str, version: int) -> dict[str, Any] | None:
        key = layout.artifact_key(name, version, "card.json")
        cached = self._cards.get(key)
        if cached is None:
            try:
                cached = json.loads(self.store.get(key))
            except (MlopsKitError, ValueError):  # not written (failed run) or unreadable
                return None
            if not isinstance(cached, dict):
                return None
            self._cards.put(key, cached)
        return cached

    # -- the latest monitoring report -------------------------------------------------------
    def report_html(self, name: str) -> bytes:
        layout.check_name(name)
        runs = self.registry.monitoring_runs(name, limit=1)
        key = (runs[-1].get("html_key") if runs else None) \
            or f"{layout.reports_prefix(name, 'monitoring')}latest.html"
        try:
            return self.store.get(key)
        except MlopsKitError:  # missing; or, in a cloud, outside what this function may read
            raise NotFound(f"model {name!r} has no monitoring report yet", field="model") from None
