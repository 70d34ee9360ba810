"""The model summary stays bounded whatever the number of versions (issue 28's follow-up).

An item is capped at 400 KB: DynamoDB's limit (docs.aws.amazon.com/amazondynamodb/latest/
developerguide/ServiceQuotas.html#limits-items: "The maximum item size in DynamoDB is 400 KB"),
which the Azure table adapter applies too (adapters/azure/table.py MAX_ITEM_CHARS). The summary
is put in every registry transaction of its model, so a summary over the cap fails them all.

- reproduction: with one entry per version (the window made unbounded) the summary grows ~70 B
  a version and crosses 400 KB at ~5,600 versions;
- the guard: 100,000 versions (and history and monitoring runs at their limits) stay under a
  bound derived from the limits;
- fold == rebuild (summary.py's invariant) over random operation sequences, with a small
  window, through the real Registry on SQLite (a property test).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_kit.adapters.local import FileObjectStore, SqliteTable
from mlops_kit.clock import FixedClock
from mlops_kit.core.registry import Registry
from mlops_kit.core.registry import summary as summaries
from mlops_kit.core.registry.retirement import archive_version, delete_model, delete_version
from mlops_kit.core.table_keys import (
    META_SK,
    SUMMARY_SK,
    VERSION_PREFIX,
    history_sk,
    model_pk,
    monitor_run_sk,
    version_sk,
)
from mlops_kit.errors import MlopsKitError
from mlops_kit.ports import Absent, Equals, Put
from tests.adapters.test_registry_summary import assert_consistent
from tests.support import examples

ITEM_LIMIT = 400_000  # DynamoDB's item size (and the Azure adapter's MAX_ITEM_CHARS)
PK = model_pk("churn")


def _size(summary: Any) -> int:
    """The item's size as the Azure adapter measures it (characters of JSON); DynamoDB counts
    attribute names and values in UTF-8 bytes, within a few percent of it for this item."""
    return len(json.dumps(summary, sort_keys=True, default=str))


def _version(v: int) -> dict[str, Any]:
    return {"model": "churn", "version": v, "status": "registered", "run_key": f"{v:064x}",
            "metrics": {"roc_auc": 0.8123456789012345, "accuracy": 0.7512345678901234},
            "gates": {"metric": "roc_auc", "value": 0.8123456789012345}}


def _register(s: dict[str, Any], v: int) -> dict[str, Any]:
    """The summary after reserve_version then complete_version of version v."""
    pending = {**_version(v), "status": "pending"}
    s = summaries.fold(s, [Put(PK, META_SK, {"latest": v}), Put(PK, version_sk(v), pending, Absent())])
    return summaries.fold(s, [Put(PK, version_sk(v), _version(v), Equals("status", "pending"))])


def _history(seq: int) -> Put:
    """An event as wide as the registry can write: a long reason, a long actor, the contract
    check's audit fields (core/registry/contract.py) naming many columns."""
    return Put(PK, history_sk(seq), {
        "seq": seq, "at": "2026-12-07T21:00:00.123456+00:00", "action": "promote",
        "alias": "champion", "from_version": seq, "to_version": seq + 1,
        "actor": "arn:aws:sts::123456789012:assumed-role/" + "r" * 3000,
        "reason": "weekly retrain: holdout roc_auc up 0.004 " * 100,
        "added_fields": [f"column_{i:04d}" for i in range(500)]}, Absent())


def _monitoring_run(hour: int, features: int = 1000) -> Put:
    """A run as core/monitoring/trend.py writes it, for a spec at its MAX_FEATURES (1,000)."""
    at = f"2026-12-{1 + hour // 24:02d}T{hour % 24:02d}:00:00+00:00"
    return Put(PK, monitor_run_sk(at), {
        "at": at, "version": 7, "status": "ok", "drifted": True, "rows": 5000, "threshold": 0.2,
        "summary": "drift in 3 features; live accuracy 0.81 over 120 labelled rows " * 7,
        "report_key": f"reports/churn/monitoring/{at}.json",
        "html_key": f"reports/churn/monitoring/{at}.html",
        "features": {f"customer_feature_{i:04d}": {"psi": 0.0123456789 * (i % 50),
                                                   "method": "psi", "statistic": 0.0123456789,
                                                   "drifted": i % 97 == 0}
                     for i in range(features)},
        "prediction_psi": 0.011, "prediction_drifted": False, "alerts": ["drift"],
        "quality": {"metric": "accuracy", "minimum": 0.7, "value": 0.8125, "alert": False,
                    "labelled": 120}})


def test_unbounded_the_summary_crosses_400_kb_near_5600_versions():
    """The bug: with every version in `versions` (the window made unbounded) the summary grows
    by one ~70 B entry a version, so the put (and so the model's every transaction) fails from
    ~5,600 versions on."""
    with mock.patch.object(summaries, "VERSIONS_LIMIT", 10**9):
        s = summaries.empty("churn")
        sizes = {}
        for v in range(1, 2001):
            s = _register(s, v)
            if v in (1000, 2000):
                sizes[v] = _size(s)
    per_version = (sizes[2000] - sizes[1000]) / 1000
    crossing = 1000 + (ITEM_LIMIT - sizes[1000]) / per_version
    assert 60 <= per_version <= 80 and 5_000 < crossing < 6_500, (per_version, crossing)


def test_the_summary_of_100000_versions_stays_under_its_bound():
    """Bounded by count (VERSIONS_LIMIT versions, HISTORY_LIMIT events, MONITORING_LIMIT runs)
    and each entry by width (texts cut at TEXT_LIMIT, RUN_FEATURES features a run), so the
    bound is those limits times the widest entry of each, here at their worst (1,000-feature
    runs, multi-KB reasons and actors), under 256 KB; none of it grows with the versions."""
    s = summaries.empty("churn")
    s = summaries.fold(s, [_history(i) for i in range(1, summaries.HISTORY_LIMIT + 11)])
    s = summaries.fold(s, [_monitoring_run(h) for h in range(summaries.MONITORING_LIMIT + 5)])
    versions_part = {}
    for first in range(1, 100_001, 10):  # transactions of ten versions each (a synthetic fold)
        batch = range(first, first + 10)
        s = summaries.fold(s, [Put(PK, META_SK, {"latest": batch[-1]}),
                               *(Put(PK, version_sk(v), _version(v), Absent()) for v in batch)])
        if batch[-1] in (1_000, 100_000):
            versions_part[batch[-1]] = _size(s["versions"])
    s = summaries.fold(s, [Put(PK, "ALIAS#champion", {
        "alias": "champion", "version": 40, "previous": 99_999, "metric": ["roc_auc", 0.81],
        "updated_at": "2026-12-07T21:00:00+00:00", "updated_by": "ci", "reason": "rollback"})])
    entry = max(_size({k: e}) for k, e in s["versions"].items())  # each adds "k": {...},
    event = max(_size(e) for e in s["history"]) + 2
    run = max(_size(r) for r in s["monitoring"]) + 2
    bound = (summaries.VERSIONS_LIMIT * entry + summaries.HISTORY_LIMIT * event
             + summaries.MONITORING_LIMIT * run + 4_096)  # + aliases, counts and the rest
    # flat in the number of versions (the keys gain digits: 1,000 -> 100,000 adds 2 a version)
    assert versions_part[100_000] - versions_part[1_000] <= 2 * summaries.VERSIONS_LIMIT
    assert versions_part[100_000] <= summaries.VERSIONS_LIMIT * entry <= 10_000
    assert len(s["versions"]) == summaries.VERSIONS_LIMIT and s["counts"] == {"registered": 100_000}
    assert all(len(r["features"]) == summaries.RUN_FEATURES and r["features_total"] == 1000
               for r in s["monitoring"])
    assert s["monitoring"][-1]["features"]["customer_feature_0000"]["drifted"]  # drifted first
    assert _size(s) <= bound <= 256_000 < ITEM_LIMIT, (_size(s), bound)
    listed = summaries.compact(s)
    assert listed["champion_metric"] == ["roc_auc", 0.81]  # v40: outside the window
    assert listed["versions"] == 100_000 and listed["newest"] == 100_000


def test_unbounded_in_width_60_runs_of_a_wide_model_crossed_400_kb():
    """The same bug by width: a run as trend.py writes it is ~108 B a feature, so 60 runs of a
    55-feature model crossed 400 KB; the summary keeps RUN_FEATURES of each run."""
    rows = [_monitoring_run(h, features=55).item for h in range(summaries.MONITORING_LIMIT)]
    assert _size(rows) > ITEM_LIMIT
    s = summaries.fold(summaries.empty("churn"),
                       [_monitoring_run(h, features=55) for h in range(summaries.MONITORING_LIMIT)])
    assert _size(s["monitoring"]) < ITEM_LIMIT // 3


def test_a_write_outside_the_window_must_say_the_status_it_replaces():
    s = summaries.empty("churn")
    for v in range(1, 4):
        s = _register(s, v)
    with mock.patch.object(summaries, "VERSIONS_LIMIT", 1):
        s = summaries.rebuild("churn", [{"sk": META_SK, "latest": 3},
                                        *({"sk": version_sk(v), **_version(v)} for v in (1, 2, 3))])
        try:
            summaries.fold(s, [Put(PK, version_sk(1), {**_version(1), "status": "archived"})])
        except ValueError as e:
            assert "conditional on its status" in str(e)
        else:
            raise AssertionError("an unconditional write outside the window was folded")


# -- fold == rebuild over random operation sequences ----------------------------------------------
OPS = st.lists(st.tuples(
    st.sampled_from(["register", "reject", "reserve", "complete", "promote", "challenger",
                     "clear", "rollback", "approve", "archive", "delete", "monitor"]),
    st.integers(min_value=1, max_value=12)), min_size=1, max_size=30)


def _run(reg: Registry, store: FileObjectStore, op: str, n: int, clock: FixedClock) -> None:
    latest = reg.latest_version("m")
    v = n if n <= latest else max(latest, 1)
    if op in ("register", "reject", "reserve"):
        res = reg.reserve_version("m", f"run-{latest + 1}", {})
        if op != "reserve":
            reg.complete_version("m", res.version, {
                "status": "registered" if op == "register" else "rejected",
                "metrics": {"auc": n / 16}, "gates": {"metric": "auc"}})
    elif op == "complete":
        reg.complete_version("m", v, {"status": "failed", "reasons": ["bad"]})
    elif op == "promote":
        reg.promote("m", v, actor="t", reason="p", allow_breaking=True)
    elif op == "challenger":
        reg.set_alias("m", "challenger", v, actor="t", reason="c", allow_breaking=True)
    elif op == "clear":
        reg.set_alias("m", "challenger", None, actor="t", reason="clear")
    elif op == "rollback":
        reg.rollback("m", actor="t")
    elif op == "approve":
        reg.update_version("m", v, {"approved": True}, actor="t")
    elif op == "archive":
        archive_version(reg, "m", v, actor="t", reason="old")
    elif op == "delete":
        clock.advance(hours=1)  # pending versions count as stuck after an hour
        delete_version(reg, store, "m", v, actor="t", reason="gone")
    else:
        reg.record_monitoring("m", {"at": f"2026-01-01T{n:02d}:00:00+00:00", "status": "ok"})


@settings(max_examples=examples(300), deadline=None, derandomize=True, database=None)
@given(ops=OPS, limit=st.integers(min_value=1, max_value=4))
def test_fold_equals_rebuild_over_random_operations(ops, limit):
    """Through the Registry on a real SQLite table: after every operation (refused ones
    included) the summary written == the one recomputed from the rows, its counts are the rows'
    and its window is exactly the versions numbered above latest - limit; at the end a whole
    model's delete empties it."""
    with tempfile.TemporaryDirectory() as tmp, \
            mock.patch.object(summaries, "VERSIONS_LIMIT", limit):
        clock = FixedClock()
        reg = Registry(SqliteTable(Path(tmp) / "t.db"), clock, stuck_after_s=3600)
        store = FileObjectStore(Path(tmp) / "store")
        reg.reserve_version("m", "run-0", {})
        for op, n in ops:
            clock.advance(minutes=1)
            try:
                _run(reg, store, op, n, clock)
            except MlopsKitError:
                pass  # refused (not registered, served, pending, nothing to roll back...)
            s = assert_consistent(reg, "m")
            rows = [r for r in reg.table.query(model_pk("m"), VERSION_PREFIX)]
            counts: dict[str, int] = {}
            for r in rows:
                counts[r["status"]] = counts.get(r["status"], 0) + 1
            assert s["counts"] == counts
            assert set(s["versions"]) == {str(r["version"]) for r in rows
                                          if r["version"] > s["latest"] - limit}
            # the window and the counts do not depend on the order the rows are folded in
            every = [r for r in reg.table.query(model_pk("m")) if r["sk"] != SUMMARY_SK]
            backwards = summaries.rebuild("m", every[::-1])
            assert (backwards["versions"], backwards["counts"]) == (s["versions"], s["counts"])
        reg.set_alias("m", "challenger", None, actor="t", reason="end")
        reg.set_alias("m", "champion", None, actor="t", reason="end")
        clock.advance(hours=2)
        delete_model(reg, store, "m", actor="t", reason="end")
        s = assert_consistent(reg, "m")
        assert s["counts"] == {} and s["versions"] == {}
        assert reg.table.get(model_pk("m"), SUMMARY_SK) is not None
