"""The MLflow mirror against a real `mlflow server` (SQLite backend, artifacts proxied by the
server, loopback port) started here: a search run on the local backend is logged as an MLflow
run with one nested run per trial, the winner's ONNX model as an artifact.

The server comes from its own venv (`make mlflow-server`: full mlflow pins pyarrow below the
kit's); the kit itself uses the `[mlflow]` extra (mlflow-skinny, the client) from dev."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from mlops_kit.core.synthetic import churn_csv
from mlops_kit.local.worker import put_object, run_once
from tests.support import FAST_SPEC, apply_spec, make_backend

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

ROOT = Path(__file__).resolve().parents[2]
SERVER = Path(os.environ.get("MLOPSKIT_TEST_MLFLOW", ROOT / ".venv-mlflow" / "bin" / "mlflow"))
SPEC = {**FAST_SPEC, "search": {"cv": 2, "candidates": [
    {"kind": "logistic_regression", "grid": {"C": [0.1, 1.0]}},
    {"kind": "random_forest", "params": {"n_estimators": 5, "bootstrap": False,
                                         "max_samples": 0.5}},
]}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    pytest.importorskip("mlflow", reason="the [mlflow] extra (in dev) is not installed")
    if not SERVER.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{SERVER} missing: `make test` installs it (make mlflow-server)")
        pytest.skip(f"no MLflow server at {SERVER}: run `make mlflow-server`")
    tmp = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(SERVER), "server", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
         "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("mlflow server did not start:\n"
                                     + (tmp / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def logged(mlflow_server, tmp_path_factory):
    b = make_backend(tmp_path_factory.mktemp("ws") / "ws", trials="sequential",
                     mlflow_tracking_uri=mlflow_server, mlflow_experiment="churn-search")
    apply_spec(b, SPEC)
    put_object(b, "datasets/churn/a.csv", churn_csv(700, seed=3))
    out = run_once(b)[-1]
    assert out["status"] == "registered", out
    return b, out


def test_the_run_and_every_trial_are_in_mlflow(mlflow_server, logged):
    from mlflow.tracking import MlflowClient

    b, _ = logged
    run = b.ctx.runs.get_run("churn", 1)
    tracked = run["tracking"]["run_id"]
    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("churn-search")
    parent = client.get_run(tracked)
    assert parent.info.experiment_id == exp.experiment_id
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlopskit.winner"] == run["winner"]
    assert parent.data.tags["mlopskit.version_status"] == "registered"
    assert parent.data.params["metric"] == "roc_auc" and parent.data.params["trials"] == "4"
    best = b.ctx.runs.get_trial("churn", 1, run["winner"])
    assert parent.data.metrics["best_cv_roc_auc"] == pytest.approx(best["cv"]["roc_auc"])
    children = client.search_runs([exp.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{tracked}'")
    assert len(children) == 4
    by_trial = {c.data.tags["mlopskit.trial"]: c for c in children}
    for t in b.ctx.runs.trials("churn", 1):
        child = by_trial[t["hash"]]
        assert child.data.params["kind"] == t["kind"]
        if t["status"] == "ok":
            assert child.info.status == "FINISHED"
            assert child.data.metrics["cv_roc_auc"] == pytest.approx(t["cv"]["roc_auc"])
            assert child.data.metrics["holdout_roc_auc"] == pytest.approx(t["holdout"]["roc_auc"])
        else:
            assert child.info.status == "FAILED"
            assert "bootstrap" in child.data.tags["mlopskit.reason"]
    assert [c.data.tags["mlopskit.best"] for c in children].count("true") == 1


def test_the_winners_onnx_model_is_an_artifact(mlflow_server, logged, tmp_path):
    from mlflow.tracking import MlflowClient

    b, _ = logged
    record = b.ctx.registry.get_version("churn", 1)
    client = MlflowClient(tracking_uri=mlflow_server)
    run_id = b.ctx.runs.get_run("churn", 1)["tracking"]["run_id"]
    path = client.download_artifacts(run_id, "model/model.onnx", str(tmp_path))
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == record["sha256"]
    assert {a.path for a in client.list_artifacts(run_id)} >= {"model", "run.json"}


def test_logging_again_finds_the_run_instead_of_duplicating_it(mlflow_server, logged):
    from mlflow.tracking import MlflowClient

    b, out = logged
    run = b.ctx.runs.get_run("churn", 1)
    again = b.ctx.tracker.log_run(run, b.ctx.runs.trials("churn", 1), out, None)
    assert again == run["tracking"]["run_id"]
    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("churn-search")
    assert len(client.search_runs([exp.experiment_id])) == 1 + 4


def test_an_unreachable_tracker_never_fails_the_run(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    b = make_backend(tmp_path / "ws", trials="sequential",
                     mlflow_tracking_uri=f"http://127.0.0.1:{_free_port()}")
    apply_spec(b, SPEC)
    put_object(b, "datasets/churn/a.csv", churn_csv(700, seed=3))
    out = run_once(b)[-1]
    assert out["status"] == "registered" and out["promoted"]
    tracking = b.ctx.runs.get_run("churn", 1)["tracking"]
    assert "run_id" not in tracking and tracking["error"]
