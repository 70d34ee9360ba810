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
