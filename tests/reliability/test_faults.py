"""Faults on the local backend: storage / table errors retried through the queue (bounded by
max_receives, then the DLQ), a SIGKILLed worker, two workers racing over many uploads."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops_kit.core.synthetic import churn_csv
from mlops_kit.errors import NotFound
from mlops_kit.local.worker import put_object, run_once
from tests.reliability.faults import Flaky, model_artifact, version_completed
from tests.support import FAST_SPEC, apply_spec, feature_records, make_backend

ROOT = Path(__file__).resolve().parents[2]


def _assert_one_good_version(backend, model="churn", version=1):
    reg = backend.ctx.registry
    versions = reg.list_versions(model)
    assert [v["version"] for v in versions] == [version]
    record = versions[0]
    assert record["status"] == "registered"
    onnx = backend.ctx.store.get(record["artifact_key"])
    assert hashlib.sha256(onnx).hexdigest() == record["sha256"]
    assert reg.champion_version(model) == version
    out = backend.service(capture=False).predict(model, feature_records(2))
    assert out["version"] == version and len(out["predictions"]) == 2


def test_transient_store_errors_are_retried_and_the_job_completes_once(backend):
    """The artifact write fails twice (S3 SlowDown); the message is released and redelivered;
    the third receive completes the same reserved version. Nothing is dead-lettered."""
    apply_spec(backend, FAST_SPEC)
    flaky = Flaky(backend.ctx.store, "put", failures=2, when=model_artifact)
    backend.ctx.store = flaky
    put_object(backend, "datasets/churn/a.csv", churn_csv(600, seed=11))
    results = run_once(backend)
    statuses = [r["status"] for r in results]
    assert statuses == ["validated", "failed", "failed", "registered"], results
    assert [r["receive_count"] for r in results if r["status"] == "failed"] == [1, 2]
    assert "service unavailable" in results[1]["error"]
    assert flaky.injected == 2
    assert results[-1]["version"] == 1 and results[-1]["promoted"]
    _assert_one_good_version(backend)
    assert backend.ctx.train_queue.depth() == 0 and backend.ctx.train_queue.dead_letters() == []


def test_transient_table_error_on_the_registry_write_is_retried(backend):
    """DynamoDB throttles the final registry write (artifacts already stored): the retry
    reuses the reservation and registers exactly one version."""
    apply_spec(backend, FAST_SPEC)
    flaky = Flaky(backend.ctx.table, "transact", failures=1, when=version_completed)
    backend.ctx.table = flaky
    backend.ctx.registry.table = flaky
    put_object(backend, "datasets/churn/a.csv", churn_csv(600, seed=12))
    results = run_once(backend)
    assert [r["status"] for r in results] == ["validated", "failed", "registered"], results
    assert flaky.injected == 1
    _assert_one_good_version(backend)


def test_permanent_storage_failure_ends_in_the_dlq_and_nothing_is_served(backend):
    """Artifact writes always fail: after max_receives (3) the job is dead-lettered, the version
    stays `pending` (never served) and no champion appears."""
    apply_spec(backend, FAST_SPEC)
    flaky = Flaky(backend.ctx.store, "put", failures=-1, when=model_artifact)
    backend.ctx.store = flaky
    put_object(backend, "datasets/churn/a.csv", churn_csv(600, seed=13))
    results = run_once(backend)
    assert [r["status"] for r in results] == ["validated", "failed", "failed", "failed"]
    assert flaky.injected == backend.settings.max_receives == 3
    dead = backend.ctx.train_queue.dead_letters()
    assert len(dead) == 1 and dead[0].body["dataset_key"] == "datasets/churn/a.csv"
    assert backend.ctx.train_queue.receive(1) == []  # the DLQ is not redelivered to workers
    reg = backend.ctx.registry
    assert [v["status"] for v in reg.list_versions("churn")] == ["pending"]
    assert reg.champion_version("churn") is None
    with pytest.raises(NotFound):
        backend.service(capture=False).predict("churn", feature_records(1))


def test_permanent_table_failure_on_validation_ends_in_the_dlq_and_keeps_the_upload(backend):
    apply_spec(backend, FAST_SPEC)
    data = churn_csv(300, seed=14)
    flaky = Flaky(backend.ctx.table, "get", failures=-1)
    backend.ctx.table = flaky
    put_object(backend, "datasets/churn/a.csv", data)
    results = run_once(backend)
    assert [r["status"] for r in results] == ["failed"] * 3
    assert [m.body["key"] for m in backend.validate_queue.dead_letters()] == [
        "datasets/churn/a.csv"]
    assert backend.ctx.store.get("datasets/churn/a.csv") == data


# -- worker processes ----------------------------------------------------------------------


def _worker(ws: Path, visibility: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "MLOPSKIT_WORKSPACE": str(ws), "MLOPSKIT_BACKEND": "local",
           "MLOPSKIT_TRAIN_VISIBILITY_S": str(visibility),
           "MLOPSKIT_VALIDATE_VISIBILITY_S": str(visibility),
           "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "-m", "mlops_kit", "worker", "--poll", "0.2"],
                            env=env, cwd=str(ws.parent), stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _wait(predicate, timeout: float, what: str, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for p in procs:
            assert p.poll() is None, f"worker exited early ({p.returncode}) while waiting: {what}"
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _statuses(backend, model="churn") -> list[str]:
    return [v["status"] for v in backend.ctx.registry.list_versions(model)]


@pytest.mark.slow
def test_sigkilled_worker_mid_training_is_redelivered_and_completes_once(tmp_path):
    """SIGKILL a worker while the version is reserved `pending`; a restarted worker picks the
    job up after the visibility timeout and completes that same version, once."""
    ws = tmp_path / "ws"
    backend = make_backend(ws)
    # A slower estimator widens the window between reservation and registration.
    apply_spec(backend, {**FAST_SPEC, "estimator": {
        "kind": "random_forest", "params": {"n_estimators": 150, "max_depth": 12}}})
    put_object(backend, "datasets/churn/a.csv", churn_csv(4000, seed=21))
    log = tmp_path / "worker.log"
    first = _worker(ws, visibility=4, log=log)
    try:
        _wait(lambda: _statuses(backend) == ["pending"], 120, "a pending version", [first])
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert _statuses(backend) == ["pending"]  # killed before the registry write
    assert backend.ctx.registry.champion_version("churn") is None
    second = _worker(ws, visibility=4, log=log)
    try:
        _wait(lambda: _statuses(backend) == ["registered"], 180, "the job to complete", [second])
        _wait(lambda: backend.ctx.train_queue.depth() == 0, 30, "the job to be acked", [second])
    finally:
        _stop(second)
    _assert_one_good_version(backend)
    record = backend.ctx.registry.get_version("churn", 1)
    assert record["lineage"]["dataset_key"] == "datasets/churn/a.csv"
    assert backend.ctx.train_queue.dead_letters() == []
    trained = [n for n in backend.ctx.notifier.messages() if n["message"].get("event") == "trained"]
    assert len(trained) == 1, trained


@pytest.mark.slow
def test_concurrent_uploads_processed_by_two_workers(tmp_path):
    """N uploads of different datasets, two worker processes racing: every dataset gets exactly
    one version, versions are unique and gapless, and alias history is one consistent chain."""
    n = 6
    ws = tmp_path / "ws"
    backend = make_backend(ws)
    apply_spec(backend, FAST_SPEC)
    for i in range(n):
        put_object(backend, f"datasets/churn/part-{i}.csv", churn_csv(400, seed=100 + i))
    log = tmp_path / "workers.log"
    workers = [_worker(ws, visibility=300, log=log) for _ in range(2)]
    try:
        def done():
            statuses = _statuses(backend)
            return (len(statuses) == n and "pending" not in statuses
                    and backend.ctx.train_queue.depth() == 0
                    and backend.validate_queue.depth() == 0)
        _wait(done, 240, f"{n} completed versions", workers)
    finally:
        for w in workers:
            _stop(w)
    reg = backend.ctx.registry
    versions = reg.list_versions("churn")
    assert [v["version"] for v in versions] == list(range(1, n + 1))
    keys = sorted(v["lineage"]["dataset_key"] for v in versions)
    assert keys == sorted(f"datasets/churn/part-{i}.csv" for i in range(n))
    assert len({v["run_key"] for v in versions}) == n
    assert all(v["status"] == "registered" for v in versions)
    # history: sequence numbers gapless; every move starts where the previous one ended
    history = [h for h in reg.history("churn") if h.get("alias") == "champion"]
    assert history, reg.history("churn")
    all_seq = [h["seq"] for h in reg.history("churn")]
    assert all_seq == list(range(1, len(all_seq) + 1))
    assert history[0]["from_version"] is None
    for before, after in zip(history, history[1:], strict=False):
        assert after["from_version"] == before["to_version"]
    assert reg.champion_version("churn") == history[-1]["to_version"]
    assert backend.ctx.train_queue.dead_letters() == []
    assert backend.validate_queue.dead_letters() == []
    log_text = log.read_text()
    assert "Traceback" not in log_text, log_text[-3000:]


def test_crash_between_registry_write_and_promotion_is_finished_by_the_retry(backend,
                                                                            monkeypatch):
    """The run is interrupted (the table times out; a killed process is redelivered the same
    way) after the version is registered but before the alias moves: the redelivered job does
    not train again, it finishes the promotion the policy granted."""
    from mlops_kit.core.registry import model_registry as registry_mod
    from mlops_kit.errors import TransientError
    real = registry_mod.Registry.promote
    calls = []

    def die_once(self, *a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise TransientError("table timed out after the registry write")
        return real(self, *a, **k)

    monkeypatch.setattr(registry_mod.Registry, "promote", die_once)
    apply_spec(backend, FAST_SPEC)
    put_object(backend, "datasets/churn/a.csv", churn_csv(600, seed=15))
    results = run_once(backend)
    assert [r["status"] for r in results] == ["validated", "failed", "duplicate"], results
    assert results[-1]["promoted"] is True and results[-1]["version"] == 1
    _assert_one_good_version(backend)
    # a later duplicate delivery changes nothing (no second promotion in the history)
    job = backend.ctx.registry.get_version("churn", 1)["lineage"]
    assert job["dataset_key"] == "datasets/churn/a.csv"
    moves = [h for h in backend.ctx.registry.history("churn") if h.get("to_version") == 1]
    assert len(moves) == 1


def test_duplicate_of_a_promoted_version_changes_nothing(trained, tmp_path):
    """Redelivering a job whose version was already promoted is a no-op: no new version, no
    second history entry, the champion stays."""
    from mlops_kit.core.training.usecase import train_job

    reg = trained.ctx.registry
    record = reg.get_version("churn", 1)
    history_before = reg.history("churn")
    job = {"model": "churn", "dataset_key": record["lineage"]["dataset_key"],
           "sha256": record["lineage"]["dataset_sha256"], "rows": record["lineage"]["rows"],
           "content_hash": record["lineage"]["content_hash"]}  # the redelivered message's
    out = train_job(trained.ctx, job)
    assert out == {"status": "duplicate", "model": "churn", "version": 1,
                   "registry_status": "registered", "promoted": False}
    assert reg.history("churn") == history_before and reg.champion_version("churn") == 1
    assert [v["version"] for v in reg.list_versions("churn")] == [1]
