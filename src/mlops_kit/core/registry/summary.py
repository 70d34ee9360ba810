"""A model's summary: what the console's models list and model page show, in one item.

The summary is a fold over the model's rows: `fold(summary, ops)` applies a transaction's Puts
and Deletes (versions, aliases, history, monitoring runs, the version counter) to it, and the
rebuild is the same fold over every row of the partition (`rebuild(model, rows)`), so the one
written incrementally and the one recomputed cannot disagree by construction (and a test checks
it after every registry operation on every backend).

Where it lives (core/table_keys.py):
- MODEL#<name> / SUMMARY: the authoritative copy, put in the same single-partition transaction
  as the change it summarises, conditional on its `rev` (concurrent writers serialise on it).
- MODELS / <name>: the model's index row carries a compact copy (`compact()`: no history, the
  last monitoring run only), so one query lists every model. A transaction cannot reach it (it
  is another partition; Azure Table transactions are single-partition), so each writer marks
  the row first (`writer`: a token, the copy dropped), commits, then puts the new copy on the
  condition that its mark is still the last one. A reader trusts a row without a mark; a marked
  row (a write in flight, or a writer that died in between) is read from MODEL#<name>/SUMMARY.
  Why that cannot go stale: a writer marks after it read the summary it commits on, so any later
  commit was marked after this one's commit; if that mark came before this one's copy, the copy's
  condition fails and the row stays marked; if after, the row is marked again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlops_kit.core.table_keys import (
    ALIAS_PREFIX,
    HISTORY_PREFIX,
    META_SK,
    MONITOR_RUN_PREFIX,
    VERSION_PREFIX,
    strip_keys,
)
from mlops_kit.ports import Delete, Put

__all__ = ["HISTORY_LIMIT", "MONITORING_LIMIT", "compact", "empty", "fold", "primary_metric",
           "rebuild"]

HISTORY_LIMIT = 200  # newest history events kept (the model page shows them)
MONITORING_LIMIT = 60  # monitoring runs kept (an hourly schedule: the last 2.5 days)
BOOKKEEPING = ("rev", "updated_at")  # not part of what is summarised


def primary_metric(record: dict[str, Any]) -> str | None:
    """The metric the promotion gates used (the spec's), else the first one recorded."""
    metric = (record.get("gates") or {}).get("metric")
    return metric or next(iter(record.get("metrics") or {}), None)


def empty(model: str) -> dict[str, Any]:
    return {"model": model, "latest": 0, "versions": {}, "aliases": {}, "history": [],
            "history_total": 0, "monitoring": [], "rev": 0}


def _version_entry(record: dict[str, Any]) -> dict[str, Any]:
    key = primary_metric(record)
    value = (record.get("metrics") or {}).get(key) if key else None
    return {"status": record.get("status"), "metric": [key, value] if key else None}


def _apply(s: dict[str, Any], sk: str, item: dict[str, Any] | None) -> None:
    """One row written (item) or deleted (None)."""
    if sk == META_SK and item is not None:
        s["latest"] = max(int(s["latest"]), int(item["latest"]))
    elif sk.startswith(VERSION_PREFIX):
        number = str(int(sk.removeprefix(VERSION_PREFIX)))
        if item is None:
            s["versions"].pop(number, None)
        else:
            s["versions"][number] = _version_entry(item)
    elif sk.startswith(ALIAS_PREFIX):
        name = sk.removeprefix(ALIAS_PREFIX)
        if item is None:
            s["aliases"].pop(name, None)
        else:
            s["aliases"][name] = dict(item)
    elif sk.startswith(HISTORY_PREFIX) and item is not None:  # append-only
        s["history"] = [*s["history"], dict(item)][-HISTORY_LIMIT:]
        s["history_total"] = max(int(s["history_total"]), int(item["seq"]))
    elif sk.startswith(MONITOR_RUN_PREFIX):
        runs = {MONITOR_RUN_PREFIX + r["at"]: r for r in s["monitoring"]}
        if item is None:
            runs.pop(sk, None)
        else:
            runs[sk] = dict(item)
        s["monitoring"] = [runs[k] for k in sorted(runs)][-MONITORING_LIMIT:]


def fold(summary: dict[str, Any], ops: Sequence[Put | Delete]) -> dict[str, Any]:
    """The summary after a transaction of the model's partition (a new dict; `rev` + 1)."""
    s = {**summary, "versions": dict(summary["versions"]), "aliases": dict(summary["aliases"]),
         "rev": int(summary.get("rev", 0)) + 1}
    for op in ops:
        _apply(s, op.sk, strip_keys(op.item) if isinstance(op, Put) else None)
    return s


def rebuild(model: str, rows: list[dict[str, Any]], rev: int = 0) -> dict[str, Any]:
    """The summary recomputed from every row of the model's partition (sorted by sk)."""
    s = empty(model)
    for row in rows:
        _apply(s, row["sk"], strip_keys(row))
    s["rev"] = rev
    return s


def compact(summary: dict[str, Any]) -> dict[str, Any]:
    """What the models list shows (kept on the model's index row)."""
    versions = summary["versions"]
    counts: dict[str, int] = {}
    for v in versions.values():
        counts[v["status"]] = counts.get(v["status"], 0) + 1
    newest = max(versions, key=int) if versions else None
    champion = (summary["aliases"].get("champion") or {}).get("version")
    entry = versions.get(str(champion)) if champion is not None else None
    monitoring = summary["monitoring"]
    return {"model": summary["model"], "latest": summary["latest"],
            "newest": int(newest) if newest else None,
            "newest_status": versions[newest]["status"] if newest else None,
            "versions": len(versions), "counts": counts, "aliases": summary["aliases"],
            "champion_metric": entry["metric"] if entry else None,
            "monitoring": monitoring[-1] if monitoring else None,
            "history_total": summary["history_total"],
            "rev": summary.get("rev"), "updated_at": summary.get("updated_at")}
