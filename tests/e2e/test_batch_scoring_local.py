"""Batch scoring past what functions can do, on the local runtime: with a low function-time
budget (scoring_batch_seconds) the upload is submitted to the batch engine (a separate
`python -m mlops_kit.train_job` process, MLOPSKIT_JOB_KIND=score), which runs the same
score_upload and writes the same parts, rejects and manifest, and ends the job in the same
final states and notifications; without a batch engine the job stays on functions and the
manifest says why."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest

from mlops_kit.core import layout
from mlops_kit.core.inflight import work_in_flight
from mlops_kit.core.scoring.records import ScoringJobs
from mlops_kit.core.synthetic import churn_csv
from mlops_kit.local.training_jobs import jobs_running
from mlops_kit.local.worker import put_object, run_once
from tests.support import make_backend

pytestmark = pytest.mark.slow
MANIFEST = layout.predictions_manifest_key("churn", "nightly")


def _events(b):
    path = b.settings.workspace / "notifications.jsonl"
    return [json.loads(line)["message"] for line in path.read_text().splitlines()]


def _bad_rows(body: bytes, every: int) -> bytes:
    lines = body.split(b"\n")
    for i in range(1, len(lines) - 1, every):  # tenure_months is not a number
        lines[i] = lines[i].replace(b",", b",x", 1)
    return b"\n".join(lines)


def test_a_job_over_the_budget_is_scored_on_the_batch_engine(trained):
    b = make_backend(trained.settings.workspace, scoring_batch_seconds=0.001)
    body = _bad_rows(churn_csv(2000, seed=11), 500)
    put = put_object(b, "scoring/churn/nightly.csv", body)

    first = run_once(b, wait_jobs=False)  # routes and submits: does not wait
    [sub] = [r for r in first if r.get("status") == "submitted"]
    assert sub["engine"] == "process" and "over the 0 s budget" in sub["route"]
    rows = [r for r in work_in_flight(b.ctx, b.validate_queue, "churn")["jobs"]
            if r["kind"] == "score"]
    assert rows and rows[0]["where"].startswith("batch (process): score-churn-")
    # a redelivered upload finds the job it submitted
    b.validate_queue.send({"key": put["key"], "etag": put["etag"]})
    again = [r for r in run_once(b, wait_jobs=False) if r.get("type") != "job"]
    assert [r["status"] for r in again] in (["submitted"], ["scored"])  # the job may be done
    assert again[0].get("duplicate") or again[0].get("already")

    final = run_once(b)  # wait for the job
    assert jobs_running(b) == 0
    [settled] = [r for r in final if r.get("type") == "job"]
    assert settled["kind"] == "score" and settled["job_status"] == "SUCCEEDED"
    assert settled["status"] == "scored" and settled["settled_here"] is False

    m = json.loads(b.ctx.store.get(MANIFEST))
    assert m["engine"] == "batch" and "budget" in m["route"]
    assert m["rows_in"] == 2000 and m["rows_rejected"] == 4
    assert m["rows_scored"] + m["rows_rejected"] == m["rows_in"]
    scored = sum(pq.read_table(io.BytesIO(b.ctx.store.get(k))).num_rows for k in m["parts"])
    assert scored == m["rows_scored"]
    [job] = ScoringJobs(b.ctx.table, b.ctx.clock).all("churn")
    assert job["status"] == "scored" and job["engine"] == "process" and job["job_id"]
    state = b.ctx.jobs.state(job["job_name"])
    assert state["attempts"][0]["exit_code"] == 0
    events = [e["event"] for e in _events(b) if e.get("key") == "scoring/churn/nightly.csv"]
    assert events.count("scoring_submitted") == 1 and events.count("scored") == 1


def test_a_batch_job_whose_version_is_gone_fails_once(trained):
    b = make_backend(trained.settings.workspace, scoring_batch_seconds=0.001)
    put_object(b, "scoring/churn/nightly.csv", churn_csv(300, seed=12))
    [sub] = [r for r in run_once(b, wait_jobs=False) if r.get("status") == "submitted"]
    for info in list(b.ctx.store.list(layout.model_prefix("churn", sub["version"]))):
        b.ctx.store.delete(info.key)  # the pinned version's model is gone before the job runs
    final = run_once(b)
    [settled] = [r for r in final if r.get("type") == "job"]
    assert settled["job_status"] == "FAILED" and settled["status"] == "failed"
    [job] = ScoringJobs(b.ctx.table, b.ctx.clock).all("churn")
    assert job["status"] == "failed" and job["reason"]
    failed = [e for e in _events(b) if e["event"] == "scoring_failed"]
    assert len(failed) == 1 and sub["job_name"] == job["job_name"]
    assert not b.ctx.store.exists(MANIFEST)


def test_without_a_batch_engine_the_job_stays_on_functions_and_the_manifest_says_why(trained):
    b = make_backend(trained.settings.workspace, scoring_batch_seconds=0.001,
                     job_runner="none")
    put_object(b, "scoring/churn/nightly.csv", churn_csv(300, seed=13))
    [out] = run_once(b)
    assert out["status"] == "scored"
    m = json.loads(b.ctx.store.get(MANIFEST))
    assert "engine" not in m and "no batch engine is configured" in m["route"]
    [job] = ScoringJobs(b.ctx.table, b.ctx.clock).all("churn")
    assert "no batch engine" in job["route"]


def test_the_cli_scores_on_the_batch_engine_and_exits_per_the_outcome(trained, tmp_path):
    from typer.testing import CliRunner

    from mlops_kit.cli.app import app

    data = tmp_path / "nightly.csv"
    data.write_bytes(churn_csv(800, seed=14))
    env = {"MLOPSKIT_WORKSPACE": str(trained.settings.workspace),
           "MLOPSKIT_SCORING_BATCH_SECONDS": "0.001"}
    r = CliRunner().invoke(app, ["score", str(data), "-m", "churn", "--json"], env=env,
                           catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    results = json.loads(r.stdout)["results"]
    assert [x["status"] for x in results] == ["submitted", "scored"]
    assert results[-1]["type"] == "job" and results[-1]["rows_scored"] == 800
    other = tmp_path / "weekly.csv"
    other.write_bytes(churn_csv(300, seed=15))
    r = CliRunner().invoke(app, ["score", str(other), "-m", "churn"], env=env,
                           catch_exceptions=False)  # the human display
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "scoring on process" in text and "(job SUCCEEDED)" in text
    assert "300 rows scored, 0 rejected -> predictions/churn/weekly/_manifest.json" in text
