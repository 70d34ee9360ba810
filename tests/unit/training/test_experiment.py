"""Experiments on the local backend, end to end: real sklearn trials in worker processes (or
fanned out on the durable queue), real SQLite records, the winner exported, parity-checked,
registered and promoted through the usual gates."""

from __future__ import annotations

import json

import pytest

from mlops_kit.core.synthetic import churn_csv
from mlops_kit.core.training.trials import JoblibRunner, run_sequential
from mlops_kit.local.worker import put_object, run_once
from tests.support import FAST_SPEC, apply_spec, feature_records, make_backend

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

# Fit-time failure sklearn's per-parameter checks cannot see (the pair is invalid together).
BROKEN = {"kind": "random_forest", "params": {"n_estimators": 5, "bootstrap": False,
                                              "max_samples": 0.5}}
SEARCH = {"cv": 3, "candidates": [
    {"kind": "logistic_regression", "grid": {"C": [0.01, 1.0]}},
    {"kind": "random_forest", "params": {"n_estimators": 15}, "grid": {"max_depth": [2, 6]}},
    BROKEN,
]}
SEARCH_SPEC = {**FAST_SPEC, "search": SEARCH}


def _train(backend, spec, rows=900, seed=5, name="a.csv"):
    apply_spec(backend, spec)
    put_object(backend, f"datasets/churn/{name}", churn_csv(rows, seed=seed))
    return run_once(backend)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    b = make_backend(tmp_path_factory.mktemp("search") / "ws")  # trials: worker processes
    return b, _train(b, SEARCH_SPEC)


def test_the_best_trial_is_registered_and_promoted(searched):
    b, results = searched
    assert [r["status"] for r in results] == ["validated", "registered"]
    out = results[-1]
    assert out["promoted"] and out["run"] == out["version"] == 1
    run = b.ctx.runs.get_run("churn", 1)
    trials = {t["hash"]: t for t in b.ctx.runs.trials("churn", 1)}
    assert run["status"] == "finished" and run["engine"] == "processes(2)"
    assert run["total"] == len(trials) == 6  # the spec's estimator + 2 + 2 + the broken one
    ok = [t for t in trials.values() if t["status"] == "ok"]
    best = max(ok, key=lambda t: (t["cv"]["roc_auc"], -t["index"]))
    assert run["winner"] == best["hash"] and out["experiment"]["winner"] == best["hash"]
    record = b.ctx.registry.get_version("churn", 1)
    # the refit winner is the model its trial scored: same params, same holdout metrics
    assert record["lineage"]["estimator"] == best["kind"]
    assert {k: record["params"][k] for k in best["params"]} == best["params"]
    assert record["metrics"] == pytest.approx(best["holdout"])
    assert record["parity"]["passed"] and record["status"] == "registered"
    exp = record["lineage"]["experiment"]
    assert exp["winner"]["hash"] == best["hash"] and exp["failed"] == 1 and exp["ok"] == 5
    assert sorted(t["hash"] for t in exp["beat"]) == sorted(t["hash"] for t in ok
                                                            if t is not best)
    assert all(t["cv"] <= best["cv"]["roc_auc"] for t in exp["beat"])
    for t in ok:
        assert set(t["cv"]) >= {"roc_auc", "accuracy"} and t["folds"] == 3
        assert t["fit_seconds"] > 0 and t["holdout"]["roc_auc"] > 0.5
    out_pred = b.service(capture=False).predict("churn", feature_records(2))
    assert out_pred["version"] == 1 and len(out_pred["predictions"]) == 2


def test_a_failed_trial_is_recorded_with_its_reason_and_does_not_fail_the_run(searched):
    b, _ = searched
    [failed] = [t for t in b.ctx.runs.trials("churn", 1) if t["status"] == "failed"]
    assert failed["params"] == BROKEN["params"]
    assert "max_sample" in failed["reason"] and "bootstrap" in failed["reason"]
    assert "cv" not in failed
    assert b.ctx.runs.get_run("churn", 1)["counts"] == {"ok": 5, "failed": 1, "skipped": 0}


def test_artifacts_keep_the_users_spec_and_the_run_page(searched):
    b, _ = searched
    store = b.ctx.store
    saved = json.loads(store.get("models/churn/000001/spec.json"))
    assert saved["search"]["candidates"][2] == {**BROKEN, "grid": {}, "ranges": {}}
    page = store.get("models/churn/000001/run.html").decode()
    assert page.count('class="trial') >= 6 and "<svg" in page and "★" in page
    assert "max_samples" in page  # the failed trial's reason is on the page


def test_every_trial_failing_rejects_the_version_and_notifies(backend):
    spec = {**FAST_SPEC, "search": {"include_estimator": False, "candidates": [BROKEN]}}
    out = _train(backend, spec)[-1]
    assert out["status"] == "rejected" and not out["promoted"]
    assert "every trial of run 1 failed" in out["reasons"][0] and "max_sample" in out["reasons"][0]
    record = backend.ctx.registry.get_version("churn", 1)
    assert record["status"] == "rejected"  # never left pending
    run = backend.ctx.runs.get_run("churn", 1)
    assert run["status"] == "failed" and run["counts"]["failed"] == 1
    events = [m["message"]["event"] for m in backend.ctx.notifier.messages()]
    assert "run_failed" in events
    assert backend.ctx.registry.champion_version("churn") is None


def test_fan_out_on_the_queue_gives_the_same_run_as_worker_processes(tmp_path, searched):
    """The cloud engine on the local durable queue: one message per trial, counted in the
    table; the last trial refits, registers and promotes."""
    b = make_backend(tmp_path / "ws", trials="queue")
    results = _train(b, SEARCH_SPEC)
    statuses = [r["status"] for r in results]
    assert statuses[:2] == ["validated", "running"] and statuses[-1] == "registered"
    assert statuses.count("trial") == 5  # the 6th trial finished the run
    run = b.ctx.runs.get_run("churn", 1)
    assert run["engine"] == "queue" and run["dispatched"] is True
    ref, _ = searched
    theirs = {t["hash"]: t for t in ref.ctx.runs.trials("churn", 1)}
    for t in b.ctx.runs.trials("churn", 1):  # deterministic seeds: the engine does not matter
        assert t["status"] == theirs[t["hash"]]["status"]
        assert t.get("cv") == pytest.approx(theirs[t["hash"]].get("cv"))
    assert run["winner"] == ref.ctx.runs.get_run("churn", 1)["winner"]
    assert b.ctx.registry.champion_version("churn") == 1


def test_redelivered_trial_and_train_messages_change_nothing(tmp_path):
    b = make_backend(tmp_path / "ws", trials="queue")
    apply_spec(b, SEARCH_SPEC)
    put_object(b, "datasets/churn/a.csv", churn_csv(900, seed=5))
    run_once_validate = b.validate_queue.receive(1)[0]
    from mlops_kit.core.router import on_object_created
    from mlops_kit.core.training.usecase import train_job

    on_object_created(b.ctx, run_once_validate.body["key"], run_once_validate.body["etag"])
    job = b.ctx.train_queue.receive(1)[0].body
    assert train_job(b.ctx, job)["status"] == "running"
    assert train_job(b.ctx, job)["dispatched"] == 0  # already dispatched: nothing re-sent
    msgs = b.ctx.train_queue.receive(10)
    assert len(msgs) == 6
    first = train_job(b.ctx, msgs[0].body)
    assert first["status"] == "trial" and first["done"] == 1
    assert train_job(b.ctx, msgs[0].body)["status"] == "duplicate"
    outs = [train_job(b.ctx, m.body) for m in msgs[1:]]
    assert outs[-1]["status"] == "registered"
    assert train_job(b.ctx, msgs[-1].body)["status"] == "duplicate"
    assert train_job(b.ctx, job)["status"] == "duplicate"
    assert b.ctx.runs.get_run("churn", 1)["done"] == 6
    assert len(b.ctx.registry.list_versions("churn")) == 1


def test_a_spent_time_budget_skips_trials_and_the_run_ends(tmp_path):
    b = make_backend(tmp_path / "ws", trials="sequential")
    spec = {**FAST_SPEC, "search": {**SEARCH, "max_seconds": 1e-6}}
    out = _train(b, spec)[-1]
    assert out["status"] == "rejected" and "skipped" in out["reasons"][0]
    trials = b.ctx.runs.trials("churn", 1)
    assert {t["status"] for t in trials} == {"skipped"} and len(trials) == 6
    assert "max_seconds" in trials[0]["reason"]


def test_runners_agree_and_a_zero_budget_starts_nothing():
    import io

    from mlops_kit.core.spec import parse_spec
    from mlops_kit.core.training.fit import read_frame
    from mlops_kit.core.training.search import plan_search

    spec = parse_spec(SEARCH_SPEC)
    frame = read_frame(io.BytesIO(churn_csv(600, seed=2)), "csv", spec)
    trials = plan_search(spec).trials
    seq = {o["hash"]: o for o in run_sequential(spec, frame, trials)}
    par = {o["hash"]: o for o in JoblibRunner(2)(spec, frame, trials)}
    assert seq.keys() == par.keys() == {t["hash"] for t in trials}
    for h, o in seq.items():
        assert o["status"] == par[h]["status"]
        assert o.get("cv") == pytest.approx(par[h].get("cv"))
        assert o.get("holdout") == pytest.approx(par[h].get("holdout"))
    assert {o["status"] for o in run_sequential(spec, frame, trials, max_seconds=0)} == {"skipped"}


def test_a_final_failure_while_finishing_a_fanned_out_run_ends_run_and_version(tmp_path,
                                                                               monkeypatch):
    """The last trial's invocation refits the winner; a deterministic error there (not
    retryable) must not leave the version pending behind a message bouncing to the DLQ."""
    from mlops_kit.core.training import experiment
    from mlops_kit.errors import TrainingError

    def broken(spec, frame):
        raise TrainingError("winner refit failed (injected)")

    monkeypatch.setattr(experiment, "train", broken)
    b = make_backend(tmp_path / "ws", trials="queue")
    results = _train(b, SEARCH_SPEC)
    assert results[-1]["status"] == "failed" and "injected" in results[-1]["reasons"][0]
    assert b.ctx.registry.get_version("churn", 1)["status"] == "failed"
    run = b.ctx.runs.get_run("churn", 1)
    assert run["status"] == "failed" and "injected" in run["reason"]
    assert b.ctx.train_queue.depth() == 0 and b.ctx.train_queue.dead_letters() == []
