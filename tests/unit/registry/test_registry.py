"""Registry rules over the real SQLite table: monotonic versions, aliases, history, rollback."""

from __future__ import annotations

import threading

import pytest

from mlops_kit.adapters.local import FileNotifier, SqliteTable
from mlops_kit.clock import FixedClock
from mlops_kit.core.registry import Registry, decide_promotion
from mlops_kit.core.spec import PromotionPolicy
from mlops_kit.errors import NotFound, PromotionRefused, RegistryConflict


@pytest.fixture
def reg(tmp_path):
    return Registry(SqliteTable(tmp_path / "t.db"), FixedClock(), FileNotifier(tmp_path / "n.jsonl"))


def _register(reg, model="m", run="r1", **fields):
    res = reg.reserve_version(model, run, {"dataset_key": "datasets/m/a.csv"})
    return reg.complete_version(model, res.version, {"status": "registered", "metrics": {}, **fields})


def test_versions_are_monotonic_and_runs_idempotent(reg):
    a = reg.reserve_version("m", "run-a", {})
    b = reg.reserve_version("m", "run-b", {})
    again = reg.reserve_version("m", "run-a", {})
    assert (a.version, b.version) == (1, 2)
    assert again.version == 1 and again.created is False
    assert [v["version"] for v in reg.list_versions("m")] == [1, 2]


def test_concurrent_reservations_get_unique_versions(tmp_path):
    table_path = tmp_path / "t.db"
    got: list[int] = []
    lock = threading.Lock()

    def work(i):
        r = Registry(SqliteTable(table_path), FixedClock())
        v = r.reserve_version("m", f"run-{i}", {}).version
        with lock:
            got.append(v)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 13))


def test_complete_is_once_only(reg):
    res = reg.reserve_version("m", "r", {})
    reg.complete_version("m", res.version, {"status": "rejected", "reasons": ["parity"]})
    again = reg.complete_version("m", res.version, {"status": "registered"})
    assert again["status"] == "rejected"


def test_promote_rollback_and_history(reg, tmp_path):
    _register(reg, run="a")
    _register(reg, run="b")
    reg.promote("m", 1, actor="t", reason="first")
    reg.promote("m", 2, actor="t", reason="better")
    assert reg.champion_version("m") == 2
    moved = reg.rollback("m", actor="ops", reason="bad canary")
    assert moved["version"] == 1 and moved["previous"] == 2
    hist = reg.history("m")
    assert [(h["from_version"], h["to_version"], h["action"]) for h in hist] == [
        (None, 1, "promote"), (1, 2, "promote"), (2, 1, "rollback")]
    assert hist[-1]["actor"] == "ops" and hist[-1]["reason"] == "bad canary"
    notes = FileNotifier(tmp_path / "n.jsonl").messages()
    assert [n["message"]["event"] for n in notes] == ["promote", "promote", "rollback"]


def test_rejected_version_is_never_promoted(reg):
    res = reg.reserve_version("m", "r", {})
    reg.complete_version("m", res.version, {"status": "rejected", "reasons": ["parity gate failed"]})
    with pytest.raises(PromotionRefused, match="parity gate failed"):
        reg.promote("m", res.version, actor="t", reason="x")
    assert reg.champion_version("m") is None


def test_pending_version_is_never_promoted(reg):
    res = reg.reserve_version("m", "r", {})
    with pytest.raises(PromotionRefused, match="pending"):
        reg.promote("m", res.version, actor="t", reason="x")


def test_approval_required(reg):
    _register(reg, requires_approval=True, approved=False)
    with pytest.raises(PromotionRefused, match="approval"):
        reg.promote("m", 1, actor="t", reason="x")
    reg.update_version("m", 1, {"approved": True, "approved_by": "alice"}, "alice")
    assert reg.promote("m", 1, actor="alice", reason="ok")["version"] == 1


def test_stale_expected_version_conflicts(reg):
    _register(reg, run="a")
    _register(reg, run="b")
    reg.promote("m", 1, actor="t", reason="x")
    with pytest.raises(RegistryConflict):
        reg.promote("m", 2, actor="t", reason="x", expected=None)
    assert reg.champion_version("m") == 1


def test_concurrent_promotions_one_wins(tmp_path):
    table = SqliteTable(tmp_path / "t.db")
    reg = Registry(table, FixedClock())
    for run in ("a", "b", "c"):
        _register(reg, run=run)
    reg.promote("m", 1, actor="t", reason="x")
    outcomes: list[str] = []

    def attempt(v):
        r = Registry(SqliteTable(tmp_path / "t.db"), FixedClock())
        try:
            r.promote("m", v, actor=f"w{v}", reason="race", expected=1)
            outcomes.append(f"won-{v}")
        except RegistryConflict:
            outcomes.append("lost")

    ts = [threading.Thread(target=attempt, args=(v,)) for v in (2, 3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(o.split("-")[0] for o in outcomes) == ["lost", "won"]
    winner = int(next(o for o in outcomes if o.startswith("won")).split("-")[1])
    assert reg.champion_version("m") == winner
    hist = reg.history("m")
    assert len(hist) == 2 and hist[-1]["to_version"] == winner and hist[-1]["from_version"] == 1


def test_rollback_without_previous(reg):
    _register(reg)
    reg.promote("m", 1, actor="t", reason="x")
    with pytest.raises(NotFound, match="no previous champion"):
        reg.rollback("m", actor="t")


@pytest.mark.parametrize(
    ("policy", "cand", "champ", "parity", "ok", "needle"),
    [
        ({"metric": "roc_auc", "minimum": 0.7}, {"roc_auc": 0.8}, None, True, True, None),
        ({"metric": "roc_auc", "minimum": 0.9}, {"roc_auc": 0.8}, None, True, False, "minimum"),
        ({"metric": "roc_auc", "min_gain": 0.01}, {"roc_auc": 0.8}, {"roc_auc": 0.795}, True,
         False, "gain"),
        ({"metric": "roc_auc", "min_gain": 0.01}, {"roc_auc": 0.82}, {"roc_auc": 0.8}, True, True,
         None),
        ({"metric": "roc_auc"}, {"roc_auc": 0.9}, None, False, False, "parity"),
        ({"metric": "rmse", "minimum": 5.0}, {"rmse": 4.0}, {"rmse": 4.5}, True, True, None),
        ({"metric": "rmse", "minimum": 5.0}, {"rmse": 6.0}, None, True, False, "minimum"),
    ],
)
def test_promotion_gates(policy, cand, champ, parity, ok, needle):
    p = PromotionPolicy(**policy)
    promote, reasons, gates = decide_promotion(p, policy["metric"] != "rmse", cand, parity, champ)
    assert promote is ok
    if needle:
        assert any(needle in r for r in reasons), reasons
    else:
        assert reasons == []


def test_aliases_latest_version_and_monitoring_runs(reg):
    assert reg.latest_version("m") == 0 and reg.aliases("m") == {}
    _register(reg, run="a")
    _register(reg, run="b")
    reg.promote("m", 2, actor="t", reason="r")
    reg.set_alias("m", "challenger", 1, actor="t", reason="c", extra={"mode": "shadow",
                                                                       "weight": 1.0})
    aliases = reg.aliases("m")
    assert reg.latest_version("m") == 2
    assert aliases["champion"]["version"] == 2 and aliases["challenger"]["mode"] == "shadow"
    assert "pk" not in aliases["champion"] and "sk" not in aliases["challenger"]
    for hour in (10, 11, 12):  # written out of order; read back in time order
        reg.record_monitoring("m", {"at": f"2026-03-02T{hour:02d}:00:00+00:00", "drifted": False,
                                    "rows": hour})
    reg.record_monitoring("m", {"at": "2026-03-02T09:00:00+00:00", "rows": 9})
    reg.record_monitoring("m", {"at": "2026-03-02T12:00:00+00:00", "rows": 120})  # a re-run
    assert [r["rows"] for r in reg.monitoring_runs("m")] == [9, 10, 11, 120]
    assert [r["rows"] for r in reg.monitoring_runs("m", limit=2)] == [11, 120]
    assert [v["version"] for v in reg.list_versions("m")] == [1, 2]  # MON# items stay apart
