"""The per-model summary (core/registry/summary.py) on every backend (SQLite, DynamoDB under
moto, Table storage under Azurite):

- after every registry operation the stored summary equals the one recomputed from the model's
  rows, and the model index's copy equals it (compacted);
- the console's models list and model page make at most 3 table calls, whatever the number of
  models and versions (counted by a wrapper around the table adapter, and on DynamoDB also as
  the API calls botocore sends);
- a writer that lost the index row to a later writer leaves that writer's copy, never its own
  older one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from mlops_kit.adapters.local import FileObjectStore
from mlops_kit.clock import FixedClock
from mlops_kit.console.data import ConsoleData
from mlops_kit.core.registry import Registry
from mlops_kit.core.registry import summary as summaries
from mlops_kit.core.registry.retirement import archive_version, delete_model, delete_version
from mlops_kit.core.registry.summary import BOOKKEEPING, compact, rebuild
from mlops_kit.core.table_keys import MODELS_PK, SUMMARY_SK, model_pk, strip_keys

PAGE_CALLS = 3  # issue 28's target: table calls per console page


class CountingTable:
    """The table adapter, counting the port's calls (each one is one request on SQLite and
    DynamoDB, and on Azure one per page of 1,000 entities plus a read per conditional write)."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.calls: Counter[str] = Counter()
        self.before_transact: Any = None  # hooks: run once around the next transaction
        self.after_transact: Any = None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.table, name)
        if name not in ("get", "put", "delete", "query", "transact"):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if name == "transact" and self.before_transact is not None:
                hook, self.before_transact = self.before_transact, None
                hook()
            out = attr(*args, **kwargs)
            if name == "transact" and self.after_transact is not None:
                hook, self.after_transact = self.after_transact, None
                hook()
            return out

        return counted

    def total(self) -> int:
        return sum(self.calls.values())


def _body(s: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in s.items() if k not in BOOKKEEPING}


def assert_consistent(reg: Registry, model: str) -> dict[str, Any]:
    """The stored summary == the recomputation from the rows; the index's copy == it."""
    table = reg.table
    stored = table.get(model_pk(model), SUMMARY_SK)
    assert stored is not None
    stored = strip_keys(stored)
    rows = [r for r in table.query(model_pk(model)) if r["sk"] != SUMMARY_SK]
    assert _body(stored) == _body(rebuild(model, rows))
    row = table.get(MODELS_PK, model)
    assert row is not None and "writer" not in row, "a finished write left the index row marked"
    assert row["summary"] == compact(stored)
    return stored


def _register(reg: Registry, model: str, run: str, auc: float, status: str = "registered"):
    res = reg.reserve_version(model, run, {"dataset_key": f"datasets/{model}/{run}.csv"})
    return reg.complete_version(model, res.version, {
        "status": status, "reasons": [] if status == "registered" else ["gate"],
        "metrics": {"roc_auc": auc, "accuracy": auc - 0.05},
        "gates": {"metric": "roc_auc", "value": auc}})


def _monitoring(at: str, drifted: bool) -> dict[str, Any]:
    return {"at": at, "version": 1, "status": "ok", "drifted": drifted, "rows": 10,
            "summary": "t", "threshold": 0.2, "features": {"a": {"psi": 0.31, "drifted": drifted}},
            "quality": {"metric": "accuracy", "value": 0.8125, "alert": False}}


@pytest.mark.parametrize("window", [None, 1], ids=["window", "window-1"])
def test_the_summary_equals_its_recomputation_after_every_operation(table, tmp_path, window,
                                                                    monkeypatch):
    """window-1: the summary keeps the newest version only (VERSIONS_LIMIT = 1), so the
    promotion, approval, rollback, archive and delete below mostly touch versions outside
    it: the counts, the champion's metric and the newest version stay right all the same."""
    if window is not None:
        monkeypatch.setattr(summaries, "VERSIONS_LIMIT", window)
    clock = FixedClock()
    reg = Registry(table, clock)
    store = FileObjectStore(tmp_path / "store")
    steps = [
        lambda: reg.reserve_version("m", "pending-run", {}),
        lambda: _register(reg, "m", "r1", 0.8125),
        lambda: _register(reg, "m", "r2", 0.875),
        lambda: _register(reg, "m", "r3", 0.5, status="rejected"),
        lambda: reg.promote("m", 3, actor="t", reason="first"),
        lambda: reg.set_alias("m", "challenger", 2, actor="t", reason="canary",
                              extra={"mode": "canary", "weight": 0.25}),
        lambda: reg.update_version("m", 2, {"approved": True, "approved_by": "t"}, actor="t"),
        lambda: reg.promote("m", 2, actor="t", reason="second"),
        lambda: reg.rollback("m", actor="t"),
        lambda: reg.set_alias("m", "challenger", None, actor="t", reason="clear"),
        lambda: reg.record_monitoring("m", _monitoring("2026-01-01T01:00:00+00:00", False)),
        lambda: reg.record_monitoring("m", _monitoring("2026-01-01T02:00:00+00:00", True)),
        lambda: reg.record_monitoring("m", _monitoring("2026-01-01T01:00:00+00:00", True)),
        lambda: archive_version(reg, "m", 4, actor="t", reason="old"),
        lambda: delete_version(reg, store, "m", 2, actor="t", reason="gone"),
    ]
    for i, step in enumerate(steps):
        clock.advance(minutes=1)
        step()
        s = assert_consistent(reg, "m")
        assert s["rev"] >= i + 1
    s = compact(reg.summary("m"))
    assert s["aliases"]["champion"]["version"] == 3 and s["champion_metric"] == ["roc_auc", 0.875]
    assert s["counts"] == {"pending": 1, "registered": 1, "archived": 1}
    assert s["latest"] == 4 and s["newest"] == 4 and s["newest_status"] == "archived"
    assert s["monitoring"]["drifted"] is True and s["history_total"] == 8
    assert reg.summaries() == [s]
    # a whole model: its rows go over several transactions, the summary follows each one
    reg.complete_version("m", 1, {"status": "failed", "reasons": ["bad"]})
    reg.set_alias("m", "champion", None, actor="t", reason="stop serving")
    delete_model(reg, store, "m", actor="t", reason="retired")
    s = assert_consistent(reg, "m")
    assert s["versions"] == {} and s["counts"] == {}
    assert s["aliases"] == {} and s["monitoring"] == []
    assert s["latest"] == 4 and s["history_total"] == 10


def test_rebuild_writes_the_recomputation_and_models_without_one_are_computed(table):
    reg = Registry(table, FixedClock())
    _register(reg, "m", "r1", 0.75)
    # a model written before summaries existed: no SUMMARY row, an index row without a copy
    table.delete(model_pk("m"), SUMMARY_SK)
    table.put(MODELS_PK, "m", {"model": "m", "created_at": "2026-01-01T00:00:00+00:00"})
    assert reg.summaries()[0]["versions"] == 1  # computed on read, not written
    assert table.get(model_pk("m"), SUMMARY_SK) is None
    _register(reg, "m", "r2", 0.5)  # the first change writes it, from the rows
    assert assert_consistent(reg, "m")["versions"].keys() == {"1", "2"}
    table.put(model_pk("m"), SUMMARY_SK, {**table.get(model_pk("m"), SUMMARY_SK), "latest": 99})
    reg.rebuild_summary("m")
    assert assert_consistent(reg, "m")["latest"] == 2


def test_a_writer_overtaken_on_the_index_row_leaves_the_later_copy(table):
    counting = CountingTable(table)
    first, second = Registry(counting, FixedClock()), Registry(table, FixedClock())
    _register(second, "m", "r1", 0.75)
    # the second writer changes the model between the first one's mark and its transaction:
    # the first loses the race on the summary's rev, reads again, and writes the copy last
    counting.before_transact = lambda: _register(second, "m", "r2", 0.5)
    _register(first, "m", "r3", 0.625)
    assert assert_consistent(first, "m")["versions"].keys() == {"1", "2", "3"}
    # ... and between its transaction and its copy: the later writer's copy stays (the first
    # one's copy is conditional on its own mark, which the later writer replaced)
    counting.after_transact = lambda: second.promote("m", 1, actor="t", reason="later")
    first.record_monitoring("m", _monitoring("2026-01-01T01:00:00+00:00", True))
    s = assert_consistent(first, "m")
    assert s["aliases"]["champion"]["version"] == 1 and s["monitoring"][-1]["drifted"]
    # the index row marked by a writer that died before its transaction: read past it
    table.put(MODELS_PK, "m", {"model": "m", "created_at": "x", "writer": "dead"})
    assert first.summaries()[0]["versions"] == 3


@pytest.mark.parametrize("models,versions", [(2, 2), (6, 5)])
def test_console_pages_make_at_most_three_table_calls(table, tmp_path, models, versions):
    """Docs of what a call is on each backend: DynamoDB Query returns up to 1 MB per call
    (docs.aws.amazon.com/amazondynamodb/latest/developerguide/Query.Pagination.html), Azure
    Table a page of up to 1,000 entities (learn.microsoft.com/rest/api/storageservices/
    query-timeout-and-pagination): one call each at these sizes."""
    reg = Registry(table, FixedClock())
    for m in range(models):
        for v in range(versions):
            _register(reg, f"m{m}", f"r{v}", 0.5 + v / 100)
        reg.promote(f"m{m}", versions, actor="t", reason="x")
        reg.record_monitoring(f"m{m}", _monitoring("2026-01-01T01:00:00+00:00", m % 2 == 0))
    counting = CountingTable(table)
    data = ConsoleData(FileObjectStore(tmp_path / "store"), Registry(counting, FixedClock()))
    api_calls = _botocore_counter(table)

    listed = data.overview()
    assert [m["model"] for m in listed] == [f"m{m}" for m in range(models)]
    assert listed[0]["champion_metric"] == ["roc_auc", 0.5 + (versions - 1) / 100]
    assert counting.total() <= PAGE_CALLS and counting.calls == {"query": 1}
    counting.calls.clear()
    page = data.model("m1")
    assert len(page["versions"]) == versions and page["monitoring"][-1]["drifted"] is False
    assert page["aliases"]["champion"]["version"] == versions
    assert counting.total() <= PAGE_CALLS, counting.calls
    if api_calls is not None:  # DynamoDB: the requests botocore sent, pages included
        assert api_calls == Counter({"Query": 1 + 2, "GetItem": 1})


def test_a_model_with_more_versions_than_the_window_shows_the_newest(table, tmp_path,
                                                                     monkeypatch):
    """The model page lists the newest VERSIONS_LIMIT versions and says how many older ones it
    leaves out (and the CLI command that lists them); its figures (versions, registered,
    archived, the champion outside the window) are the whole model's; still <= 3 calls. A
    monitoring run's drift shows its RUN_FEATURES most drifted features, and says so."""
    from mlops_kit.console.model_pages import model_page
    from mlops_kit.console.pages import models_page

    monkeypatch.setattr(summaries, "VERSIONS_LIMIT", 3)
    reg = Registry(table, FixedClock())
    for v in range(1, 8):
        _register(reg, "m", f"r{v}", 0.5 + v / 100)
    reg.promote("m", 2, actor="t", reason="old champion")
    archive_version(reg, "m", 1, actor="t", reason="old")
    wide = _monitoring("2026-01-01T01:00:00+00:00", True)
    wide["features"] = {f"f{i:02d}": {"psi": i / 100, "drifted": i > 17} for i in range(20)}
    reg.record_monitoring("m", wide)  # 20 features: the summary keeps the 12 most drifted
    counting = CountingTable(table)
    data = ConsoleData(FileObjectStore(tmp_path / "store"), Registry(counting, FixedClock()))
    api_calls = _botocore_counter(table)

    d = data.model("m")
    assert counting.total() <= PAGE_CALLS, counting.calls
    if api_calls is not None:  # one Query of the newest versions, not one per 1 MB of them all
        assert api_calls == Counter({"Query": 2, "GetItem": 1})
    assert [v["version"] for v in d["versions"]] == [5, 6, 7] and d["older"] == 4
    assert d["counts"] == {"registered": 6, "archived": 1}
    text = str(model_page(d, root="/ui/", signed_in=True))
    assert "4 older versions not shown" in text and "mlops-kit registry versions m" in text
    assert ">7</div>" in text and "6 registered, 1 archived" in text
    assert "The 12 most drifted of 20 features in each run" in text
    assert d["monitoring"][-1]["features"].keys() == {f"f{i:02d}" for i in range(8, 20)}
    listed = data.overview()
    assert listed[0]["versions"] == 7 and listed[0]["newest"] == 7
    assert listed[0]["champion_metric"] == ["roc_auc", 0.52]  # v2, outside the window
    listing = str(models_page(listed, root="/ui/", signed_in=True))
    assert '<td class="num">7 <span class="muted small">(1 archived)</span></td>' in listing


def _botocore_counter(table: Any) -> Counter | None:
    if type(table).__name__ != "DynamoTable":
        return None
    sent: Counter[str] = Counter()
    table.ddb.meta.events.register("before-call.dynamodb.*",
                                   lambda model, **_: sent.update([model.name]))
    return sent
