"""The local runtime's batch path end to end: a dataset over the (lowered) threshold trains in
a separate `python -m mlops_kit.train_job` process while the worker keeps validating; the
version it registers is served; a job that fails is settled `failed` and announced."""

from __future__ import annotations

import json
import os

import pytest

from mlops_kit.core.synthetic import churn_csv
from mlops_kit.local.training_jobs import jobs_running
from mlops_kit.local.worker import run_once, upload
from tests.support import FAST_SPEC, apply_spec, feature_records, make_backend

pytestmark = pytest.mark.slow


def notifications(b):
    path = b.settings.workspace / "notifications.jsonl"
    return [json.loads(line)["message"] for line in path.read_text().splitlines()]


def test_large_dataset_trains_in_a_separate_process(tmp_path):
    b = make_backend(tmp_path / "ws", train_max_function_rows=1000)
    apply_spec(b, FAST_SPEC)
    data = tmp_path / "big.csv"
    data.write_bytes(churn_csv(3000, seed=7))
    upload(b, data, "churn")

    first = run_once(b, wait_jobs=False)  # validates, routes, submits: does not wait
    [submitted] = [r for r in first if r.get("status") == "submitted"]
    assert submitted["engine"] == "process" and "3000 rows" in submitted["route"]
    assert b.ctx.jobs.state(submitted["job_name"])["status"] in ("SUBMITTED", "RUNNING")
    assert b.ctx.registry.list_versions("churn")[0]["status"] == "pending"
    # the worker is free: another upload is validated (and quarantined) meanwhile
    bad = tmp_path / "bad.csv"
    bad.write_text("tenure_months,churned\n1,0\n")
    upload(b, bad, "churn")
    assert [r["status"] for r in run_once(b, wait_jobs=False)] == ["quarantined"]

    final = run_once(b)  # now wait for the job
    assert jobs_running(b) == 0
    [settled] = [r for r in final if r.get("type") == "job"]
    assert settled["job_status"] == "SUCCEEDED" and settled["status"] == "registered"
    assert settled["promoted"] is True and settled["settled_here"] is False
    [version] = b.ctx.registry.list_versions("churn")
    assert version["status"] == "registered" and version["lineage"]["engine"] == "process"
    assert b.ctx.registry.champion_version("churn") == version["version"]
    state = b.ctx.jobs.state(submitted["job_name"])
    assert state["supervisor_pid"] != os.getpid() and state["pid"] != os.getpid()
    assert state["attempts"][0]["max_rss_mb"] > 100  # the trainer's own peak, measured

    out = b.service(capture=False).predict("churn", feature_records(3))
    assert out["version"] == version["version"] and len(out["predictions"]) == 3


def test_a_failing_job_leaves_a_failed_version_and_one_alert(tmp_path):
    b = make_backend(tmp_path / "ws", train_max_function_rows=1000)
    apply_spec(b, {**FAST_SPEC, "estimator": {"kind": "logistic_regression",
                                             "params": {"C": -1.0}}})
    data = tmp_path / "big.csv"
    data.write_bytes(churn_csv(1500, seed=8))
    upload(b, data, "churn")
    results = run_once(b)
    [settled] = [r for r in results if r.get("type") == "job"]
    assert settled["job_status"] == "FAILED" and settled["status"] == "failed"
    assert "estimator.params.C" in settled["reasons"][0]
    [version] = b.ctx.registry.list_versions("churn")
    assert version["status"] == "failed" and "estimator.params.C" in version["reasons"][0]
    alerts = [n for n in notifications(b) if n["event"] == "trained" and n["status"] == "failed"]
    assert len(alerts) == 1 and alerts[0]["version"] == version["version"]
    assert b.ctx.registry.champion_version("churn") is None
