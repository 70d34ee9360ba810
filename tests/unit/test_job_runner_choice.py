"""The batch engine is the composition root's choice (bootstrap.job_runner): the AWS factory
builds AWS Batch or nothing, a separate process on aws comes from the root, and `emulate`
supplies its own engine through bootstrap.use_job_runner instead of touching an adapter."""

from __future__ import annotations

import pytest

from mlops_kit.adapters.aws.factory import job_runner as aws_factory_runner
from mlops_kit.adapters.local.process_runner import ProcessRunner
from mlops_kit.bootstrap import job_runner, use_job_runner
from mlops_kit.settings import Settings
from mlops_kit.topology import default_topology


@pytest.fixture
def supplied():
    yield use_job_runner
    use_job_runner(None)


def test_the_aws_factory_never_builds_a_process_engine(tmp_path):
    s = Settings(backend="aws", job_runner="process", workspace=str(tmp_path),
                 batch_job_queue="q", batch_job_definition="d")
    assert aws_factory_runner(s, default_topology()) is None


def test_process_on_aws_is_a_process_engine_under_the_workspace(tmp_path):
    s = Settings(backend="aws", job_runner="process", workspace=str(tmp_path), batch_attempts=3)
    runner = job_runner(s, None)
    assert isinstance(runner, ProcessRunner)
    assert runner.root == tmp_path.resolve() / "jobs" and runner.attempts == 3
    assert runner.env == {}


def test_a_supplied_engine_replaces_the_configured_one_on_aws_only(tmp_path, supplied):
    mine = ProcessRunner(tmp_path / "emulated", env={"AWS_ACCESS_KEY_ID": "job"})
    configured = ProcessRunner(tmp_path / "configured")
    supplied(lambda settings, job: mine)
    assert job_runner(Settings(backend="aws"), None) is mine
    assert job_runner(Settings(backend="local", workspace=str(tmp_path)), configured) is configured
    supplied(None)
    assert job_runner(Settings(backend="aws"), None) is None


def test_the_aws_factory_builds_each_functions_batch_job_from_its_env():
    """Issue 27: train gets the queue and training's definition; validate the queue and the
    scoring job's definition (MLOPSKIT_SCORE_JOB_DEFINITION), whose retry rules, attempts and
    timeout are score-large's; a stack from before the scoring job scores on functions."""
    from mlops_kit.adapters.aws.batch import BatchRunner

    topo = default_topology(batch=True)
    train = Settings(backend="aws", batch_job_queue="q", batch_job_definition="train-def",
                     batch_attempts=3, batch_timeout_s=600)
    runner = aws_factory_runner(train, topo)
    assert isinstance(runner, BatchRunner) and runner.job.name == "train-large"
    assert (runner.definition, runner.attempts, runner.timeout_s) == ("train-def", 3, 600)
    assert aws_factory_runner(train, topo, scoring=True) is None  # no scoring definition
    validate = Settings(backend="aws", batch_job_queue="q", score_job_definition="score-def")
    scoring = aws_factory_runner(validate, topo, scoring=True)
    assert isinstance(scoring, BatchRunner) and scoring.job.name == "score-large"
    assert (scoring.queue, scoring.definition) == ("q", "score-def")
    assert (scoring.attempts, scoring.timeout_s) == (scoring.job.attempts, scoring.job.timeout_s)
    assert aws_factory_runner(validate, topo) is None  # validate never trains on Batch


def test_a_supplied_engine_is_asked_per_batch_job(tmp_path, supplied):
    train, score = ProcessRunner(tmp_path / "t"), ProcessRunner(tmp_path / "s")
    supplied(lambda settings, job: {"train-large": train, "score-large": score}[job])
    assert job_runner(Settings(backend="aws"), None) is train
    assert job_runner(Settings(backend="aws"), None, "score-large") is score
