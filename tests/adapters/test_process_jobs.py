"""The local batch engine (adapters/local/training_jobs.py) with real processes: each attempt runs a
small script standing in for `python -m mlops_kit.train_job` (exit codes scripted), so the
supervisor's Batch semantics are checked without training: one job per name, exit 75 retried,
anything else final, timeouts, a supervisor that dies, each state change reported once."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from mlops_kit.adapters.local.process_runner import ProcessRunner
from mlops_kit.ports import JobRunner

SCRIPT = """
import json, os, sys, time
codes = os.environ["FAKE_EXITS"].split(",")
counter = os.environ["FAKE_COUNTER"]
n = int(open(counter).read()) if os.path.exists(counter) else 0
open(counter, "w").write(str(n + 1))
time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
code = int(codes[min(n, len(codes) - 1)])
print(json.dumps({"status": "failed", "reason": f"scripted failure {n + 1}"} if code else
                 {"status": "registered"}))
sys.exit(code)
"""


@pytest.fixture
def runner(tmp_path):
    script = tmp_path / "fake_train_job.py"
    script.write_text(SCRIPT)

    def make(**kw) -> ProcessRunner:
        return ProcessRunner(tmp_path / "jobs", command=(sys.executable, str(script)), **kw)

    return make


def env(tmp_path: Path, exits: str, sleep: float = 0) -> dict[str, str]:
    return {"FAKE_EXITS": exits, "FAKE_COUNTER": str(tmp_path / f"count-{exits}-{sleep}"),
            "FAKE_SLEEP": str(sleep), "MLOPSKIT_MODEL": "churn", "MLOPSKIT_VERSION": "1"}


def wait_done(r: ProcessRunner, name: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if r.running() == 0:
            return r.state(name)
        time.sleep(0.05)
    raise AssertionError(f"job {name} still running: {r.state(name)}")


def test_one_job_per_name(runner, tmp_path):
    r = runner()
    assert isinstance(r, JobRunner)
    first = r.submit("train-a", env(tmp_path, "0", sleep=0.5))
    second = r.submit("train-a", env(tmp_path, "0"))
    assert first.created and not second.created and second.job_id == first.job_id
    state = wait_done(r, "train-a")
    assert state["status"] == "SUCCEEDED" and len(state["attempts"]) == 1
    assert state["supervisor_pid"] != os.getpid() and state["pid"] != os.getpid()
    assert state["attempts"][0]["max_rss_mb"] > 0
    assert int((tmp_path / "count-0-0.5").read_text()) == 1  # ran once


def test_exit_75_is_retried_then_succeeds(runner, tmp_path):
    r = runner(attempts=3)
    r.submit("train-b", env(tmp_path, "75,0"))
    state = wait_done(r, "train-b")
    assert state["status"] == "SUCCEEDED"
    assert [a["exit_code"] for a in state["attempts"]] == [75, 0]


def test_retries_are_bounded(runner, tmp_path):
    r = runner(attempts=2)
    r.submit("train-c", env(tmp_path, "75"))
    state = wait_done(r, "train-c")
    assert state["status"] == "FAILED" and [a["exit_code"] for a in state["attempts"]] == [75, 75]
    assert state["reason"] == "scripted failure 2"


def test_any_other_failure_is_final(runner, tmp_path):
    r = runner(attempts=3)
    r.submit("train-d", env(tmp_path, "1,0"))
    state = wait_done(r, "train-d")
    assert state["status"] == "FAILED" and len(state["attempts"]) == 1
    assert state["reason"] == "scripted failure 1"  # the job's own JSON outcome line


def test_an_attempt_over_the_timeout_is_killed(runner, tmp_path):
    r = runner(attempts=1, timeout_s=1)
    r.submit("train-e", env(tmp_path, "0", sleep=30))
    state = wait_done(r, "train-e")
    assert state["status"] == "FAILED" and "exceeded timeout" in state["reason"]


def test_a_killed_job_fails_with_the_signal(runner, tmp_path):
    r = runner(attempts=2)
    r.submit("train-f", env(tmp_path, "0", sleep=30))
    deadline = time.monotonic() + 20
    while not (r.state("train-f") or {}).get("pid") and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(r.state("train-f")["pid"], signal.SIGKILL)  # what the OOM killer does
    state = wait_done(r, "train-f")
    assert state["status"] == "FAILED" and len(state["attempts"]) == 1
    assert "SIGKILL" in state["reason"] and "out of memory" in state["reason"]


def test_a_dead_supervisor_is_reported_failed(runner, tmp_path):
    r = runner(attempts=1)
    r.submit("train-g", env(tmp_path, "0", sleep=30))
    deadline = time.monotonic() + 20
    while not (r.state("train-g") or {}).get("pid") and time.monotonic() < deadline:
        time.sleep(0.05)
    state = r.state("train-g")
    os.kill(state["supervisor_pid"], signal.SIGKILL)
    os.kill(state["pid"], signal.SIGKILL)
    state = wait_done(r, "train-g")
    assert state["status"] == "FAILED" and "supervisor exited" in state["reason"]


def test_each_state_change_is_reported_once(runner, tmp_path):
    r = runner()
    r.submit("train-h", env(tmp_path, "0"))
    wait_done(r, "train-h")
    [change] = r.poll()
    assert (change.status, change.env["MLOPSKIT_MODEL"]) == ("SUCCEEDED", "churn")
    assert r.poll() == [change]  # not yet handled: reported again
    r.reported(change)
    assert r.poll() == []
    # another runner on the same folder (a restarted worker) sees the same history
    assert ProcessRunner(tmp_path / "jobs").poll() == []
    assert json.loads((tmp_path / "jobs" / "train-h" / "state.json").read_text())["status"] \
        == "SUCCEEDED"


def test_names_are_checked(runner):
    with pytest.raises(ValueError, match="job name"):
        runner().submit("../escape", {})


# -- AWS Batch: names and state change events (adapters/aws/batch.py) ------------------------
def test_batch_job_names_follow_batchs_rule_and_stay_distinct():
    import re

    from mlops_kit.adapters.aws.batch import JOB_NAME, batch_job_name
    from mlops_kit.core.training.engines import job_name

    run = f"{'a' * 64}:{'b' * 16}"
    name = job_name("churn", run)
    assert batch_job_name(name) == name and JOB_NAME.fullmatch(name)  # already valid: unchanged
    long_model = "m" * 63
    names = {batch_job_name(job_name(long_model, f"{c * 64}:{'b' * 16}")) for c in "abc"}
    names |= {batch_job_name("_x:y"), batch_job_name("-x:y"), batch_job_name("x" * 300),
              batch_job_name("x" * 301)}
    assert len(names) == 7
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", n) for n in names)


def test_state_change_event_to_job_state():
    from mlops_kit.adapters.aws.batch import parse_body

    event = {"source": "aws.batch", "detail-type": "Batch Job State Change", "detail": {
        "jobName": "train-churn-x", "jobId": "42", "status": "FAILED",
        "statusReason": "Essential container in task exited",
        "attempts": [{}, {}],
        "container": {"exitCode": 137, "reason": "OutOfMemoryError: Container killed",
                      "environment": [{"name": "MLOPSKIT_MODEL", "value": "churn"},
                                      {"name": "AWS_BATCH_JOB_ID", "value": "42"}]}}}
    state = parse_body(json.dumps(event))
    assert (state.name, state.job_id, state.status, state.attempts) == (
        "train-churn-x", "42", "FAILED", 2)
    assert state.env == {"MLOPSKIT_MODEL": "churn"}
    assert state.reason == ("Essential container in task exited "
                            "(OutOfMemoryError: Container killed; exit code 137)")
    assert parse_body(json.dumps({"source": "aws.s3"})) is None
    assert parse_body("not json") is None


def test_retry_strategy_retries_only_infrastructure_and_exit_75():
    from mlops_kit.topology import batch_retry_strategy, default_topology

    jobs = default_topology(batch=True).batch_jobs  # training's and scoring's: the same rules
    assert [j.name for j in jobs] == ["train-large", "score-large"]
    assert batch_retry_strategy(jobs[0]) == batch_retry_strategy(jobs[1])
    strategy = batch_retry_strategy(jobs[0])
    rules = strategy["evaluateOnExit"]
    assert strategy["attempts"] == 2 and len(rules) <= 5  # Batch's limit
    assert rules[-1] == {"onStatusReason": "*", "action": "EXIT"}  # no match would RETRY
    retried = {next(v for k, v in r.items() if k != "action") for r in rules[:-1]}
    assert retried == {"Your Spot Task was interrupted*", "ResourceInitializationError*",
                       "CannotPullContainerError*", "75"}
    assert all(r["action"] == "RETRY" for r in rules[:-1])
