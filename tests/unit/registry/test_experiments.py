"""Run and trial records in the model's partition: idempotent trials, one counter, exactly one
finisher under concurrency; the read models the CLI and the pages use."""

from __future__ import annotations

import threading

import pytest

from mlops_kit.adapters.local.table import SqliteTable
from mlops_kit.clock import SystemClock
from mlops_kit.core.registry.experiments import RunStore
from mlops_kit.core.registry.run_views import compare_runs, ranked_trials, run_summary
from mlops_kit.errors import NotFound


def plan(n: int) -> list[dict]:
    return [{"index": i, "hash": f"h{i:02d}", "kind": "random_forest", "params": {"max_depth": i}}
            for i in range(n)]


def new_run(store: RunStore, n: int = 4, run: int = 1, **extra) -> dict:
    record, created = store.start_run("churn", run, {"version": run, "trials": plan(n),
                                                     "metric": "roc_auc",
                                                     "higher_is_better": True, **extra})
    assert created
    return record


def outcome(i: int, value: float | None, status: str = "ok") -> dict:
    out = {"hash": f"h{i:02d}", "index": i, "kind": "random_forest",
           "params": {"max_depth": i}, "status": status}
    if value is not None:
        out["cv"] = {"roc_auc": value}
    else:
        out["reason"] = "boom"
    return out


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(SqliteTable(tmp_path / "t.db"), SystemClock())


def test_start_is_idempotent_and_keys_do_not_clash_with_the_registry(store):
    new_run(store)
    again, created = store.start_run("churn", 1, {"version": 1, "trials": plan(9)})
    assert not created and again["total"] == 4
    keys = [i["sk"] for i in store.table.query("MODEL#churn")]
    assert keys == ["EXPRUN#000001"]
    assert store.table.query("MODEL#churn", "RUN#") == []  # the registry's idempotency prefix
    with pytest.raises(NotFound):
        store.get_run("churn", 2)


def test_a_trial_counts_once_and_the_last_one_completes_the_run(store):
    new_run(store, n=2)
    first = store.record_trial("churn", 1, outcome(0, 0.8))
    assert (first.recorded, first.done, first.completes_run) == (True, 1, False)
    dup = store.record_trial("churn", 1, outcome(0, 0.1))  # a redelivered trial
    assert (dup.recorded, dup.done) == (False, 1)
    assert store.get_trial("churn", 1, "h00")["cv"]["roc_auc"] == 0.8
    last = store.record_trial("churn", 1, outcome(1, None, "failed"))
    assert last.completes_run and store.get_run("churn", 1)["done"] == 2


def test_concurrent_trials_serialise_and_exactly_one_finishes(store):
    n = 12
    new_run(store, n=n)
    completions, errors = [], []

    def record(i):
        try:
            for _ in range(2):  # every trial delivered twice, concurrently
                r = store.record_trial("churn", 1, outcome(i, i / 100))
                if r.completes_run:
                    completions.append(i)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(completions) == 1
    run = store.get_run("churn", 1)
    assert run["done"] == n and len(store.trials("churn", 1)) == n


def test_finish_happens_once_and_annotations_keep_the_counter(store):
    new_run(store, n=1)
    store.update_run("churn", 1, {"dispatched": True})
    store.record_trial("churn", 1, outcome(0, 0.7))
    done = store.finish_run("churn", 1, {"status": "finished", "winner": "h00"})
    assert done["status"] == "finished" and done["done"] == 1 and done["dispatched"] is True
    again = store.finish_run("churn", 1, {"status": "failed", "winner": "other"})
    assert again["status"] == "finished" and again["winner"] == "h00"


def test_ranking_marks_the_best_and_lists_failed_and_pending_after(store):
    run = new_run(store, n=5)
    trials = [outcome(0, 0.70), outcome(1, 0.91), outcome(2, None, "failed"), outcome(3, 0.91)]
    rows = ranked_trials(run, trials)
    assert [r["hash"] for r in rows] == ["h01", "h03", "h00", "h02", "h04"]
    assert [r["rank"] for r in rows] == [1, 2, 3, None, None]
    assert [r["best"] for r in rows] == [True, False, False, False, False]
    assert rows[-1]["status"] == "pending"
    lower = {**run, "metric": "log_loss", "higher_is_better": False}
    lows = [{**t, "cv": {"log_loss": t["cv"]["roc_auc"]}} if "cv" in t else t for t in trials]
    assert ranked_trials(lower, lows)[0]["hash"] == "h00"
    summary = run_summary(run, trials)
    assert summary["best"]["hash"] == "h01" and (summary["ok"], summary["failed"],
                                                 summary["pending"]) == (3, 1, 1)


def test_compare_two_runs_on_common_candidates(store):
    a = new_run(store, n=3, run=1)
    b = new_run(store, n=3, run=2)
    ta = [outcome(0, 0.70), outcome(1, 0.80), outcome(2, 0.75)]
    tb = [outcome(0, 0.72), outcome(1, 0.78), {**outcome(2, 0.90), "hash": "new"}]
    out = compare_runs((a, ta), (b, tb))
    assert out["best_delta"] == pytest.approx(0.10) and out["better"] == "b"
    assert [c["hash"] for c in out["common"]] == ["h00", "h01"]
    assert out["common"][0]["delta"] == pytest.approx(0.02)
    assert out["only_a"] == ["h02"] and out["only_b"] == ["new"]
