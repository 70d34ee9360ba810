"""The batch-engine side of scoring in-process (core/scoring/batch.py): the router submits
once per upload, the job (run_scoring_job, what `python -m mlops_kit.train_job` runs with
MLOPSKIT_JOB_KIND=score) scores with the version chosen at submit and exits as training's
jobs do (0, 1 final, 75 retry), and the engine's report settles a job that died. The engine is
an in-memory recorder here; tests/e2e/test_batch_scoring_local.py runs the real process one."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_kit.core import layout
from mlops_kit.core.scoring import batch, sizing
from mlops_kit.core.scoring.records import ScoringJobs
from mlops_kit.core.scoring.usecase import run_scoring_job
from mlops_kit.core.synthetic import churn_csv, churn_records
from mlops_kit.errors import TransientError
from mlops_kit.local.worker import put_object, run_once
from mlops_kit.ports import JobHandle, JobState

pytestmark = pytest.mark.check
MANIFEST = layout.predictions_manifest_key("churn", "nightly")


class Recorder:
    """A JobRunner that records submits (idempotent by name, as Batch and the process are)."""

    engine = "recorder"

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, str]] = {}

    def submit(self, name: str, env: dict[str, str]) -> JobHandle:
        created = name not in self.jobs
        self.jobs.setdefault(name, env)
        return JobHandle(self.engine, name, f"id-{name}", created)


def _to_batch(trained) -> Recorder:
    trained.ctx.scoring_jobs = Recorder()
    trained.ctx.scoring_batch_seconds = 0.001
    return trained.ctx.scoring_jobs


def test_a_job_is_submitted_once_and_the_job_scores_with_the_version_chosen(trained):
    runner = _to_batch(trained)
    put = put_object(trained, "scoring/churn/nightly.csv", churn_csv(500, seed=3))
    [sub] = run_once(trained)
    assert sub["status"] == "submitted" and sub["duplicate"] is False
    trained.validate_queue.send({"key": put["key"], "etag": put["etag"]})  # redelivered
    [again] = run_once(trained)
    assert again["status"] == "submitted" and again["duplicate"] is True
    [(name, env)] = runner.jobs.items()
    assert env[batch.ENV_KIND] == batch.SCORE_KIND and json.loads(
        env[batch.ENV_SCORE_JOB])["version"] == sub["version"]

    outcome, code = run_scoring_job(trained.ctx, env)
    assert code == batch.EXIT_OK and outcome["status"] == "scored"
    assert outcome["rows_in"] == 500 and outcome["engine"] == "batch"
    assert json.loads(trained.ctx.store.get(MANIFEST))["version"] == sub["version"]
    # the engine reports the end: the job ended itself, nothing to settle
    done = batch.on_job_state(trained.ctx, JobState("recorder", name, "id", "SUCCEEDED",
                                                    env=env))
    assert done["status"] == "scored" and done["settled_here"] is False
    # a rerun of the job (a retried attempt) answers from the manifest
    assert run_scoring_job(trained.ctx, env)[0].get("already") is True


def test_a_transient_fault_exits_75_and_the_retry_completes(trained, monkeypatch):
    runner = _to_batch(trained)
    put_object(trained, "scoring/churn/nightly.csv", churn_csv(300, seed=4))
    run_once(trained)
    [env] = runner.jobs.values()
    store, real, calls = trained.ctx.store, trained.ctx.store.put, []

    def flaky(key, data, **kw):
        calls.append(key)
        if len(calls) == 1:
            raise TransientError("SlowDown: please reduce your request rate")
        return real(key, data, **kw)

    monkeypatch.setattr(store, "put", flaky)
    outcome, code = run_scoring_job(trained.ctx, env)
    assert code == batch.EXIT_RETRY and outcome["status"] == "retry"
    [job] = ScoringJobs(trained.ctx.table, trained.ctx.clock).all("churn")
    assert job["status"] == "running"
    outcome, code = run_scoring_job(trained.ctx, env)
    assert code == batch.EXIT_OK and outcome["rows_scored"] == 300


def test_a_job_the_engine_killed_is_failed_once(trained):
    runner = _to_batch(trained)
    put_object(trained, "scoring/churn/nightly.csv", churn_csv(300, seed=5))
    run_once(trained)
    [(name, env)] = runner.jobs.items()
    state = JobState("recorder", name, "id", "FAILED", reason="OutOfMemoryError: Container "
                     "killed due to memory usage", env=env)
    first = batch.on_job_state(trained.ctx, state)
    assert first["status"] == "failed" and first["settled_here"] is True
    assert "OutOfMemoryError" in first["reason"]
    second = batch.on_job_state(trained.ctx, state)  # the event delivered twice
    assert second["status"] == "failed" and second["settled_here"] is False
    assert batch.on_job_state(trained.ctx, JobState("recorder", "x", "y", "FAILED"))[
        "status"] == "ignored"  # neither scoring's nor (here) training's


def test_a_parquet_file_of_one_row_group_too_slow_for_a_function_goes_to_batch(
        trained, monkeypatch):
    _to_batch(trained)
    trained.ctx.scoring_batch_seconds = 3600.0
    trained.ctx.scoring_chunk_bytes = 1000  # splitting is on, but a row group is never split
    monkeypatch.setattr(sizing, "ROWS_PER_S", 10)  # 2000 rows: 200 s, over 60 s
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k != "churned"}
                                  for r in churn_records(2000, seed=6)])
    buf = io.BytesIO()
    pq.write_table(table, buf)  # one row group
    put_object(trained, "scoring/churn/nightly.parquet", buf.getvalue())
    [sub] = run_once(trained)
    assert sub["status"] == "submitted" and "one row group" in sub["route"]


def test_an_upload_already_running_on_functions_is_not_submitted_again(trained):
    put = put_object(trained, "scoring/churn/nightly.csv", churn_csv(300, seed=7))
    ScoringJobs(trained.ctx.table, trained.ctx.clock).start(  # as fan_out leaves it running
        "churn", "nightly", put["etag"], {"key": put["key"], "chunked": True, "total": 3})
    runner = _to_batch(trained)  # then the deployment gained a batch engine; redelivered
    [out] = run_once(trained)
    assert out["status"] == "running" and out["duplicate"] is True
    assert runner.jobs == {}
