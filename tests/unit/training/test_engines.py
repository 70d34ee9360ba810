"""core/training/engines.py on the real local backend with an in-memory engine (a fake that
keeps Batch's one rule that matters here: one job per name): routing, the reservation at
submit, idempotency, the job's own outcome (final vs transient) and settling by state."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from mlops_kit.core.router import on_object_created
from mlops_kit.core.sizing import RouteLimits
from mlops_kit.core.synthetic import churn_csv
from mlops_kit.core.training.engines import (
    ENV_VERSION,
    EXIT_FINAL,
    EXIT_OK,
    EXIT_RETRY,
    job_from_env,
    on_job_state,
    route_training,
    run_batch_job,
)
from mlops_kit.errors import MlopsKitError, TransientError
from mlops_kit.ports import JobHandle, JobRunner, JobState
from tests.support import FAST_SPEC, apply_spec, make_backend


class MemoryRunner:
    engine = "memory"

    def __init__(self) -> None:
        self.jobs: dict[str, dict] = {}
        self.calls = 0

    def submit(self, name: str, env: dict[str, str]) -> JobHandle:
        self.calls += 1
        if name in self.jobs:
            return JobHandle(self.engine, name, self.jobs[name]["id"], False)
        self.jobs[name] = {"id": uuid.uuid4().hex, "env": env}
        return JobHandle(self.engine, name, self.jobs[name]["id"], True)


@pytest.fixture
def world(tmp_path):
    b = make_backend(tmp_path / "ws", job_runner="none")
    runner = MemoryRunner()
    assert isinstance(runner, JobRunner)
    b.ctx.jobs = runner
    b.ctx.limits = RouteLimits(max_function_rows=1000, batch_available=True)
    apply_spec(b, FAST_SPEC)
    return b, runner


def validated_job(b, rows, seed, name="data.csv"):
    """Upload, validate, and return the training message validation queued."""
    key = f"datasets/churn/{name}"
    b.ctx.store.put(key, churn_csv(rows, seed=seed))
    out = on_object_created(b.ctx, key)
    assert out["status"] == "validated", out
    [msg] = b.ctx.train_queue.receive(1)
    b.ctx.train_queue.ack(msg)
    return msg.body


def notifications(b):
    path = b.settings.workspace / "notifications.jsonl"
    return [json.loads(line)["message"] for line in path.read_text().splitlines()] \
        if path.exists() else []


def test_small_job_trains_in_process(world):
    b, runner = world
    out = route_training(b.ctx, validated_job(b, 600, 1))
    assert out["engine"] == "function" and out["status"] == "registered"
    assert runner.calls == 0


def test_large_job_reserves_its_version_and_is_submitted_once(world):
    b, runner = world
    job = validated_job(b, 1500, 2)
    first = route_training(b.ctx, job)
    assert first["status"] == "submitted" and first["duplicate"] is False
    assert "1500 rows is over" in first["route"]
    [record] = b.ctx.registry.list_versions("churn")
    assert record["status"] == "pending" and record["lineage"]["engine"] == "memory"
    [(name, submitted)] = runner.jobs.items()
    assert name.startswith("train-churn-") and first["job_name"] == name
    assert job_from_env(submitted["env"]) == job  # the job carries the whole message
    assert submitted["env"][ENV_VERSION] == str(record["version"])
    # redelivered: the marker answers, the engine is not asked again
    again = route_training(b.ctx, job)
    assert again["duplicate"] is True and again["job_id"] == first["job_id"]
    assert runner.calls == 1 and len(b.ctx.registry.list_versions("churn")) == 1
    # the marker lost (a crash right after submit): the engine finds the job by name
    b.ctx.table.delete("TRAINJOB#churn", record["run_key"])
    third = route_training(b.ctx, job)
    assert third["duplicate"] is True and third["job_id"] == first["job_id"]
    assert len(runner.jobs) == 1
    [event] = [n for n in notifications(b) if n["event"] == "training_submitted"]
    assert event["version"] == record["version"]


def test_the_job_trains_with_the_same_reservation_and_never_twice(world):
    b, runner = world
    route_training(b.ctx, validated_job(b, 1500, 3))
    [submitted] = runner.jobs.values()
    out, code = run_batch_job(b.ctx, submitted["env"])
    assert code == EXIT_OK and out["status"] == "registered" and out["promoted"] is True
    out, code = run_batch_job(b.ctx, submitted["env"])  # a retried attempt, a duplicate job
    assert code == EXIT_OK and out["status"] == "duplicate"
    assert [v["status"] for v in b.ctx.registry.list_versions("churn")] == ["registered"]
    # the engine's SUCCEEDED finds nothing to settle
    state = JobState("memory", "n", "id", "SUCCEEDED", None, submitted["env"], 1)
    out = on_job_state(b.ctx, state)
    assert (out["status"], out["settled_here"], out["promoted"]) == ("registered", False, True)


def test_a_model_failure_is_final(world):
    b, runner = world
    apply_spec(b, {**FAST_SPEC, "estimator": {"kind": "logistic_regression",
                                             "params": {"C": -1.0}}})
    route_training(b.ctx, validated_job(b, 1500, 4))
    [submitted] = runner.jobs.values()
    out, code = run_batch_job(b.ctx, submitted["env"])
    assert code == EXIT_FINAL and "estimator.params.C" in out["reason"]
    [record] = b.ctx.registry.list_versions("churn")
    assert record["status"] == "failed" and "estimator.params.C" in record["reasons"][0]
    [alert] = [n for n in notifications(b) if n["event"] == "trained" and n["status"] == "failed"]
    assert alert["reasons"] == record["reasons"]
    # Batch then reports FAILED: the version is settled already, no second alert
    state = JobState("memory", "n", "id", "FAILED", "Essential container in task exited",
                     submitted["env"], 1)
    out = on_job_state(b.ctx, state)
    assert out["status"] == "failed" and out["settled_here"] is False
    assert "estimator.params.C" in out["reasons"][0]  # the job's own reason stands
    assert len([n for n in notifications(b) if n["event"] == "trained" and n["status"] == "failed"]) == 1


def test_a_transient_fault_asks_for_a_retry_and_leaves_the_version_pending(world):
    b, runner = world
    route_training(b.ctx, validated_job(b, 1500, 5))
    [submitted] = runner.jobs.values()

    class Throttled:
        def __init__(self, store):
            self.store = store

        def __getattr__(self, name):
            return getattr(self.store, name)

        def open(self, key):
            raise TransientError(f"{key}: service unavailable (SlowDown)")

    ctx = replace(b.ctx, store=Throttled(b.ctx.store))
    out, code = run_batch_job(ctx, submitted["env"])
    assert code == EXIT_RETRY and "SlowDown" in out["reason"]
    assert b.ctx.registry.list_versions("churn")[0]["status"] == "pending"
    # the retry succeeds with the same reservation
    assert run_batch_job(b.ctx, submitted["env"])[1] == EXIT_OK
    assert [v["status"] for v in b.ctx.registry.list_versions("churn")] == ["registered"]


def test_an_engine_failure_settles_the_pending_version_once(world):
    b, runner = world
    route_training(b.ctx, validated_job(b, 1500, 6))
    [submitted] = runner.jobs.values()
    running = JobState("memory", "n", "id", "RUNNING", None, submitted["env"], 1)
    assert on_job_state(b.ctx, running)["status"] == "observed"
    died = JobState("memory", "n", "id", "FAILED",
                    "OutOfMemoryError: Container killed due to memory usage", submitted["env"], 2)
    out = on_job_state(b.ctx, died)
    assert out["status"] == "failed" and out["settled_here"] is True
    [record] = b.ctx.registry.list_versions("churn")
    assert record["status"] == "failed" and "OutOfMemoryError" in record["reasons"][0]
    assert record["job"]["attempts"] == 2
    assert on_job_state(b.ctx, died)["settled_here"] is False  # at-least-once delivery
    assert len([n for n in notifications(b) if n["event"] == "trained" and n["status"] == "failed"]) == 1


def test_a_job_that_succeeded_without_completing_its_version_is_failed(world):
    b, runner = world
    route_training(b.ctx, validated_job(b, 1500, 7))
    [submitted] = runner.jobs.values()
    out = on_job_state(b.ctx, JobState("memory", "n", "id", "SUCCEEDED", None,
                                       submitted["env"], 1))
    assert out["status"] == "failed" and "without completing" in out["reasons"][0]


def test_foreign_jobs_are_ignored(world):
    b, _ = world
    out = on_job_state(b.ctx, JobState("batch", "etl", "x", "FAILED", "boom", {}, 1))
    assert out["status"] == "ignored"


def test_batch_forced_without_an_engine_fails_the_version(world):
    b, _ = world
    b.ctx.jobs = None
    apply_spec(b, {**FAST_SPEC, "training": {"engine": "batch"}})
    out = route_training(b.ctx, validated_job(b, 600, 8))
    assert out["status"] == "failed" and "training.engine is batch" in out["reasons"][0]
    assert b.ctx.registry.list_versions("churn")[0]["status"] == "failed"


def test_job_environment_is_checked():
    with pytest.raises(MlopsKitError, match="MLOPSKIT_TRAIN_JOB"):
        job_from_env({})
    env = {"MLOPSKIT_TRAIN_JOB": json.dumps({"model": "churn", "dataset_key": "datasets/a.csv"}),
           "MLOPSKIT_DATASET_KEY": "datasets/b.csv", "MLOPSKIT_RUN_ID": "r",
           "MLOPSKIT_MODEL": "churn", "MLOPSKIT_VERSION": "1"}
    with pytest.raises(MlopsKitError, match="does not match"):
        job_from_env(env)
