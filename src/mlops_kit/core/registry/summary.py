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

Bounded whatever the number of versions (an item is capped at 400 KB: DynamoDB's limit, which the
Azure table adapter applies too; unbounded, a model's every transaction failed from ~5,600
versions on): `versions` holds the versions numbered above `latest - VERSIONS_LIMIT` (the
window: `latest` is the version counter, which never goes down, so a version leaves the window
once and never comes back, and which rows are in it does not depend on the order they are
folded in), and `counts` counts every version by status. A write of a version outside the
window is conditional on the status it replaces (Equals("status", ...), or Absent), which the
fold reads as the status it takes off the counts: the transaction commits only if that was the
status. Each alias carries its version's primary metric (set_alias writes it), so the models
list shows the champion's metric even when a rollback went outside the window. History
(HISTORY_LIMIT) and monitoring runs (MONITORING_LIMIT) are bounded by count, and each one by
width, by a function of its own row alone (so fold and rebuild still agree): an event keeps the
fields the timeline shows, its texts cut at TEXT_LIMIT characters; a run keeps the psi and
drift flag of its RUN_FEATURES most drifted features (and `features_total`); the rows and
reports keep everything. Unbounded in width, 60 runs of a model with ~55 features crossed
400 KB (~108 B a feature a run).
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
from mlops_kit.ports import Absent, Condition, Delete, Equals, Put

__all__ = ["HISTORY_LIMIT", "MONITORING_LIMIT", "RUN_FEATURES", "TEXT_LIMIT", "VERSIONS_LIMIT",
           "compact", "current", "empty", "fold", "metric_of", "primary_metric", "rebuild"]

HISTORY_LIMIT = 200  # newest history events kept (the model page shows them)
MONITORING_LIMIT = 60  # monitoring runs kept (an hourly schedule: the last 2.5 days)
VERSIONS_LIMIT = 100  # the window: versions numbered above latest - VERSIONS_LIMIT (~70 B each)
RUN_FEATURES = 12  # features of a monitoring run kept: the most drifted (the report has all)
TEXT_LIMIT = 200  # characters kept of a history event's texts (actor, reason)
HISTORY_FIELDS = ("seq", "at", "action", "alias", "from_version", "to_version", "actor", "reason")
BOOKKEEPING = ("rev", "updated_at")  # not part of what is summarised


def primary_metric(record: dict[str, Any]) -> str | None:
    """The metric the promotion gates used (the spec's), else the first one recorded."""
    metric = (record.get("gates") or {}).get("metric")
    return metric or next(iter(record.get("metrics") or {}), None)


def empty(model: str) -> dict[str, Any]:
    return {"model": model, "latest": 0, "versions": {}, "counts": {}, "aliases": {},
            "history": [], "history_total": 0, "monitoring": [], "rev": 0}


def current(summary: dict[str, Any]) -> bool:
    """False for a summary written before it was bounded (no `counts`): rebuild it."""
    return "counts" in summary


def metric_of(record: dict[str, Any]) -> list[Any] | None:
    """[primary metric, its value] of a version record (None: no metric recorded)."""
    key = primary_metric(record)
    return [key, (record.get("metrics") or {}).get(key)] if key else None


def _version_entry(record: dict[str, Any]) -> dict[str, Any]:
    return {"status": record.get("status"), "metric": metric_of(record)}


def _event(item: dict[str, Any]) -> dict[str, Any]:
    """A history event as the summary keeps it: what the timeline shows, texts cut."""
    return {k: v[:TEXT_LIMIT] if isinstance(v, str) else v
            for k, v in item.items() if k in HISTORY_FIELDS}


def _run(item: dict[str, Any]) -> dict[str, Any]:
    """A monitoring run as the summary keeps it: the RUN_FEATURES most drifted features (drifted
    first, then by PSI, then by name), their psi and drift flag only."""
    features = item.get("features")
    if not isinstance(features, dict):
        return dict(item)
    scored = [(n, f if isinstance(f, dict) else {}) for n, f in features.items()]
    scored.sort(key=lambda nf: (not nf[1].get("drifted"), -float(nf[1].get("psi") or 0.0),
                                nf[0]))
    kept = sorted(scored[:RUN_FEATURES])
    return {**item, "features": {n: {"psi": f.get("psi"), "drifted": bool(f.get("drifted"))}
                                 for n, f in kept}, "features_total": len(features)}


def _in_window(s: dict[str, Any], number: int) -> bool:
    return number > int(s["latest"]) - VERSIONS_LIMIT


def _replaced_status(s: dict[str, Any], number: int, condition: Condition) -> str | None:
    """The status of the version row this write replaces (None: there was none). In the
    window the summary holds every version; outside it the write's condition says."""
    if _in_window(s, number):
        entry = s["versions"].get(str(number))
        return str(entry["status"]) if entry else None
    if isinstance(condition, Absent):
        return None
    if isinstance(condition, Equals) and condition.attr == "status":
        return str(condition.value)
    raise ValueError(f"a write of version {number}, outside the summary's window, must be "
                     "conditional on its status (Equals('status', ...)) or Absent()")


def _count(counts: dict[str, int], status: str | None, delta: int) -> None:
    if status is None:
        return
    n = counts.get(status, 0) + delta
    if n:
        counts[status] = n
    else:
        counts.pop(status, None)


def _apply(s: dict[str, Any], sk: str, item: dict[str, Any] | None,
           condition: Condition) -> None:
    """One row written (item) or deleted (None), on the condition it was written with."""
    if sk == META_SK and item is not None:
        s["latest"] = max(int(s["latest"]), int(item["latest"]))
        s["versions"] = {k: v for k, v in s["versions"].items() if _in_window(s, int(k))}
    elif sk.startswith(VERSION_PREFIX):
        number = int(sk.removeprefix(VERSION_PREFIX))
        _count(s["counts"], _replaced_status(s, number, condition), -1)
        if item is not None:
            _count(s["counts"], str(item.get("status")), +1)
        if not _in_window(s, number):
            return
        if item is None:
            s["versions"].pop(str(number), None)
        else:
            s["versions"][str(number)] = _version_entry(item)
    elif sk.startswith(ALIAS_PREFIX):
        name = sk.removeprefix(ALIAS_PREFIX)
        if item is None:
            s["aliases"].pop(name, None)
        else:
            s["aliases"][name] = dict(item)
    elif sk.startswith(HISTORY_PREFIX) and item is not None:  # append-only
        s["history"] = [*s["history"], _event(item)][-HISTORY_LIMIT:]
        s["history_total"] = max(int(s["history_total"]), int(item["seq"]))
    elif sk.startswith(MONITOR_RUN_PREFIX):
        runs = {MONITOR_RUN_PREFIX + r["at"]: r for r in s["monitoring"]}
        if item is None:
            runs.pop(sk, None)
        else:
            runs[sk] = _run(item)
        s["monitoring"] = [runs[k] for k in sorted(runs)][-MONITORING_LIMIT:]


def fold(summary: dict[str, Any], ops: Sequence[Put | Delete]) -> dict[str, Any]:
    """The summary after a transaction of the model's partition (a new dict; `rev` + 1)."""
    s = {**summary, "versions": dict(summary["versions"]), "counts": dict(summary["counts"]),
         "aliases": dict(summary["aliases"]), "rev": int(summary.get("rev", 0)) + 1}
    for op in ops:
        _apply(s, op.sk, strip_keys(op.item) if isinstance(op, Put) else None, op.condition)
    return s


def rebuild(model: str, rows: list[dict[str, Any]], rev: int = 0) -> dict[str, Any]:
    """The summary recomputed from every row of the model's partition (sorted by sk): the
    fold of each row put on an empty partition."""
    s = empty(model)
    for row in rows:
        _apply(s, row["sk"], strip_keys(row), Absent())
    s["rev"] = rev
    return s


def compact(summary: dict[str, Any]) -> dict[str, Any]:
    """What the models list shows (kept on the model's index row). `newest` is the newest
    version in the window (None when every version of the window was deleted: `counts` still
    counts the older ones)."""
    versions, counts = summary["versions"], summary["counts"]
    newest = max(versions, key=int) if versions else None
    champ = summary["aliases"].get("champion") or {}
    entry = versions.get(str(champ.get("version"))) if champ.get("version") is not None else None
    monitoring = summary["monitoring"]
    return {"model": summary["model"], "latest": summary["latest"],
            "newest": int(newest) if newest else None,
            "newest_status": versions[newest]["status"] if newest else None,
            "versions": sum(counts.values()), "counts": counts, "aliases": summary["aliases"],
            "champion_metric": entry["metric"] if entry else champ.get("metric"),
            "monitoring": monitoring[-1] if monitoring else None,
            "history_total": summary["history_total"],
            "rev": summary.get("rev"), "updated_at": summary.get("updated_at")}
