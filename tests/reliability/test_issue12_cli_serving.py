"""Issue 12, the CLI / serving / packaging half: one test per numbered reproduction (items 4,
6, 7, 9, 10, 11, 12 except the prediction-drift threshold, 13). Each asserts the final state a
user sees: the exit code, the message, the HTTP status and body, the registry."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mlops_kit.cli.app import app
from mlops_kit.core.synthetic import churn_csv
from tests.support import FAST_SPEC, apply_spec, feature_records, make_backend, post_prediction

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def cli(ws, *args, env=None):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False,
                         env={"MLOPSKIT_WORKSPACE": str(ws), **(env or {})})


# -- 4. upload exits 0 when it failed -----------------------------------------------------
@pytest.mark.parametrize(("change", "status", "why"), [
    ({"promotion": {**FAST_SPEC["promotion"], "parity_tolerance": 1e-30},
      "estimator": {"kind": "gradient_boosting", "params": {"n_estimators": 5}}},
     "rejected", "parity"),
    ({"estimator": {"kind": "logistic_regression", "params": {"max_iter": -3}}},
     "failed", "max_iter"),
])
def test_4_upload_exits_1_when_the_version_is_rejected_or_training_fails(tmp_path, change,
                                                                        status, why):
    ws = tmp_path / "ws"
    apply_spec(make_backend(ws), {**FAST_SPEC, **change})
    data = tmp_path / "churn.csv"
    data.write_bytes(churn_csv(600, seed=4))
    r = cli(ws, "upload", data, "-m", "churn", "--json")
    assert r.exit_code == 1, r.stderr
    results = json.loads(r.stdout)["results"]
    assert results[-1]["status"] == status
    assert why in json.dumps(results[-1]) and why in r.stderr  # the reason is on the screen


def test_4_upload_exits_0_when_the_job_is_done(tmp_path):
    ws = tmp_path / "ws"
    apply_spec(make_backend(ws), FAST_SPEC)
    data = tmp_path / "churn.csv"
    data.write_bytes(churn_csv(600, seed=4))
    r = cli(ws, "upload", data, "-m", "churn")
    assert r.exit_code == 0 and "champion" in r.stdout


# -- 6. token --rotate reaches a running server ---------------------------------------------
def test_6_rotated_token_reaches_a_running_server(trained):
    from mlops_kit.local.auth import ensure_token
    from mlops_kit.local.server import ServerThread, build_api

    ws = trained.settings.workspace
    old = ensure_token(ws)
    srv = ServerThread(build_api(trained, auth=True, workspace=ws)).start()
    try:
        url = f"{srv.url}/v1/models/churn:predict"
        assert post_prediction(url, old) == 200
        new = json.loads(cli(ws, "token", "--rotate", "--json").stdout)["token"]
        start = time.monotonic()
        while post_prediction(url, old) != 401:
            assert time.monotonic() - start < 3, "old token still accepted after 3 s"
            time.sleep(0.05)
        assert post_prediction(url, new) == 200
        assert json.loads((ws / "auth.json").read_text())["sha256"] != new  # hashed
    finally:
        srv.stop()


def test_6_auth_follows_the_token_file_and_fails_closed(tmp_path):
    from mlops_kit.errors import Unauthorized
    from mlops_kit.local.auth import BearerAuth, ensure_token, rotate_token

    old = ensure_token(tmp_path)
    auth = BearerAuth(tmp_path)
    auth({"authorization": f"Bearer {old}"})
    new = rotate_token(tmp_path)  # written beside, renamed over: never a missing file
    auth({"authorization": f"Bearer {new}"})
    with pytest.raises(Unauthorized):
        auth({"authorization": f"Bearer {old}"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auth.json"]  # no temp file left
    (tmp_path / "auth.json").unlink()  # the token file removed: every request refused
    with pytest.raises(Unauthorized):
        auth({"authorization": f"Bearer {new}"})


# -- 7. missing or misspelled fields are not imputed ----------------------------------------
def test_7_typo_and_missing_features_are_400s_naming_them(served):
    backend, api, token = served
    h = {"authorization": f"Bearer {token}"}
    good = feature_records(1, seed=21)[0]
    good["support_calls"] = 2.0
    typo = {k if k != "monthly_charges" else "monthly_charge": v for k, v in good.items()}
    r = api.handle("POST", "/v1/models/churn:predict", h, json.dumps({"instances": [typo]}))
    assert r.status == 400 and r.body["field"] == "monthly_charge"
    assert "unknown field" in r.body["error"] and "'monthly_charges'" in r.body["error"]
    many = [good] * 20 + [typo]  # the column-wise fast path refuses it the same way
    r = api.handle("POST", "/v1/models/churn:predict", h, json.dumps({"instances": many}))
    assert r.status == 400 and r.body["field"] == "monthly_charge"
    missing = {k: v for k, v in good.items() if k != "monthly_charges"}
    r = api.handle("POST", "/v1/models/churn:predict", h, json.dumps({"instances": [missing]}))
    assert r.status == 400 and r.body["field"] == "monthly_charges"
    assert "required" in r.body["error"] and "nullable" in r.body["error"]
    # support_calls and payment say nullable: true, so leaving them out is allowed
    optional = {k: v for k, v in good.items() if k not in ("support_calls", "payment")}
    r = api.handle("POST", "/v1/models/churn:predict", h, json.dumps({"instances": [optional]}))
    assert r.status == 200, r.body
    # V2: an unknown tensor and a missing one are named too
    names = [k for k in good]
    tensors = [{"name": n if n != "age" else "agee", "shape": [1], "datatype": "BYTES",
                "data": [good[n]]} for n in names]
    r = api.handle("POST", "/v2/models/churn/infer", h, json.dumps({"inputs": tensors}))
    assert r.status == 400 and r.body["field"] == "inputs" and "agee" in r.body["error"]


def test_7_a_spec_can_opt_into_ignoring_unknown_fields():
    from mlops_kit.core.features import records_to_inputs
    from mlops_kit.core.spec import parse_spec
    from mlops_kit.errors import ValidationError

    record = {**feature_records(1)[0], "support_calls": 1, "payment": "card", "note": "vip"}
    strict = parse_spec(FAST_SPEC)
    assert strict.serving.unknown_fields == "reject"
    assert all(not f.nullable for f in parse_spec({**FAST_SPEC, "features": [
        {k: v for k, v in f.items() if k != "nullable"} for f in FAST_SPEC["features"]]}).features)
    with pytest.raises(ValidationError, match="note: unknown field"):
        records_to_inputs(strict, [record])
    lenient = parse_spec({**FAST_SPEC, "serving": {"unknown_fields": "ignore"}})
    assert records_to_inputs(lenient, [record])["age"].shape == (1, 1)
    assert lenient.spec_hash() != strict.spec_hash()  # the policy is part of the spec's identity
    assert strict.spec_hash() == parse_spec({**FAST_SPEC, "serving": {}}).spec_hash()
    with pytest.raises(Exception, match="serving.unknown_fields"):
        parse_spec({**FAST_SPEC, "serving": {"unknown_fields": "drop"}})


# -- 9. demo --workspace . would rmtree the current directory ---------------------------------
def test_9_demo_never_deletes_a_folder_it_did_not_create(tmp_path, monkeypatch):
    from mlops_kit.cli.demo import MARKER, prepare_workspace

    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    monkeypatch.chdir(mine)
    for target in (".", str(mine)):
        r = cli(tmp_path / "ws", "demo", "--workspace", target, "--json")
        assert r.exit_code == 2 and "not created by the demo" in json.loads(r.stdout)["error"]
        assert (mine / "thesis.tex").read_text() == "years of work"
    # a folder the demo made before is cleared and reused; an empty one is used as is
    earlier = prepare_workspace(tmp_path / "demo")
    (earlier / "store").mkdir()
    assert prepare_workspace(tmp_path / "demo") == earlier and not (earlier / "store").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (prepare_workspace(empty) / MARKER).is_file()
    # ... but never the current directory, even one the demo made
    monkeypatch.chdir(earlier)
    (earlier / "store").mkdir()
    with pytest.raises(Exception, match="current directory"):
        prepare_workspace(Path("."))
    assert (earlier / "store").is_dir()


# -- 10. a plain install gives a broken CLI ---------------------------------------------------
def test_10_missing_sdk_names_the_extra_without_a_traceback(tmp_path):
    """boto3 absent (blocked in sys.modules): exit 2 and `pip install 'mlops-kit[aws]'`.
    The real fresh-venv install is tests/e2e/test_pip_install.py (slow)."""
    code = ("import sys; sys.modules['boto3'] = sys.modules['botocore'] = None; "
            "from mlops_kit.cli.app import main; main(['registry', 'list'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "MLOPSKIT_BACKEND": "aws", "MLOPSKIT_REGION": "eu-west-1",
                            "MLOPSKIT_WORKSPACE": str(tmp_path)})
    assert r.returncode == 2 and "pip install 'mlops-kit[aws]'" in r.stderr
    assert "Traceback" not in r.stderr


def test_10_base_dependencies_run_the_cli_and_the_serve_zip_stays_light():
    import tomllib

    from infra.lambda_zips import _dist_name, requirements_for

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {_dist_name(r) for r in project["dependencies"]}
    assert {"typer", "rich", "scikit-learn", "skl2onnx", "pyarrow", "pyyaml"} <= base
    extras = project["optional-dependencies"]
    assert {"aws", "emulate", "infra", "dev"} <= set(extras)
    assert {_dist_name(r) for r in extras["aws"]} >= {"boto3", "aws-lambda-powertools"}
    assert {_dist_name(r) for r in extras["emulate"]} >= {"moto", "mlops-kit"}
    serve = {_dist_name(r) for r in requirements_for("serve")}
    assert not serve & {"typer", "rich", "scikit-learn", "skl2onnx", "pandas", "pyarrow", "moto"}


# -- 11. tracebacks instead of messages ------------------------------------------------------
def test_11_busy_port_bad_workspace_and_missing_cloud_settings_are_messages(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = cli(tmp_path / "ws", "serve", "--port", port, "--json")
        assert r.exit_code == 2
        assert json.loads(r.stdout)["field"] == "port" and "already in use" in r.stderr
        assert not (tmp_path / "ws" / "auth.json").exists()  # no token made in vain
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = cli(afile, "registry", "list")
    assert r.exit_code == 2 and "not a folder" in r.stderr
    r = cli(tmp_path / "ws", "registry", "list", "--json", env={"MLOPSKIT_BACKEND": "aws"})
    assert r.exit_code == 2 and "MLOPSKIT_DATA_BUCKET" in json.loads(r.stdout)["error"]
    r = cli(tmp_path / "ws", "registry", "list", env={"MLOPSKIT_BACKEND": "gcp"})
    assert r.exit_code == 2 and "MLOPSKIT_BACKEND" in r.stderr


def test_11_emulate_on_a_busy_port_is_a_message(tmp_path):
    """A process of its own: emulate sets the environment and signal handlers it runs with."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = subprocess.run([sys.executable, "-m", "mlops_kit", "emulate", "--port",
                            str(busy.getsockname()[1]), "--json"], capture_output=True,
                           text=True, timeout=120, cwd=tmp_path,
                           env={**os.environ, "AWS_ACCESS_KEY_ID": "testing",
                                "AWS_SECRET_ACCESS_KEY": "testing"})
    assert r.returncode == 2 and json.loads(r.stdout)["field"] == "port", r.stderr
    assert "already in use" in r.stderr and "Traceback" not in r.stderr


# -- 12. smaller defects -----------------------------------------------------------------------
def test_12_json_output_never_carries_nan_or_infinity(tmp_path):
    from mlops_kit.cli.common import to_json

    b = make_backend(tmp_path / "ws")
    res = b.ctx.registry.reserve_version("m", "run", {"dataset_key": "datasets/m/x.csv"})
    b.ctx.registry.complete_version("m", res.version, {
        "status": "rejected", "metrics": {"rmse": float("inf"), "r2": float("nan")},
        "parity": {"passed": False, "max_abs_diff": float("inf")}, "reasons": ["parity"]})
    r = cli(tmp_path / "ws", "registry", "show", "m", "1", "--json")
    doc = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in --json output"))
    assert doc["metrics"] == {"rmse": None, "r2": None} and doc["parity"]["max_abs_diff"] is None
    import numpy as np

    assert json.loads(to_json({"a": np.float32("nan"), "b": (np.int64(3),)})) == {"a": None,
                                                                                   "b": [3]}


def test_12_options_and_head_answer_json_not_501_html(server):
    srv, token, _ = server

    def call(method, path, auth=True):
        req = urllib.request.Request(srv.url + path, method=method,
                                     headers={"authorization": f"Bearer {token}"} if auth else {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    status, headers, body = call("OPTIONS", "/v1/models/churn:predict", auth=False)
    assert status == 204 and headers["allow"] == "POST, OPTIONS" and body == b""
    status, headers, body = call("HEAD", "/v2/health/ready")
    assert status == 200 and body == b"" and headers["content-type"] == "application/json"
    status, headers, body = call("HEAD", "/v2/models/churn")
    assert status == 200 and body == b""
    for method in ("GET", "PATCH", "DELETE"):
        status, headers, body = call(method, "/v1/models/churn:predict")
        assert status == 405 and headers["allow"] == "POST, OPTIONS"
        assert json.loads(body)["code"] == "method_not_allowed"
    status, headers, body = call("OPTIONS", "/nowhere", auth=False)
    assert status == 404 and "not found" in json.loads(body)["error"]
    # the cloud serve function answers the same way (the same HttpApi)
    from mlops_kit.emulate.aws_events import http_api_event

    api = srv.api
    r = api.handle("OPTIONS", "/v2/models/churn/infer", {}, b"")
    assert r.status == 204 and r.headers["allow"] == "POST, OPTIONS" and r.json_bytes() == b""
    assert http_api_event("OPTIONS", "/v1/models/churn:predict", {}, b"")["requestContext"][
        "http"]["method"] == "OPTIONS"


def test_12_serve_function_answers_options_in_json(trained, monkeypatch):
    from mlops_kit.emulate import context_for, http_api_event, load_function, reset_functions
    from mlops_kit.topology import default_topology

    monkeypatch.setenv("MLOPSKIT_BACKEND", "local")
    monkeypatch.setenv("MLOPSKIT_WORKSPACE", str(trained.settings.workspace))
    reset_functions()
    serve = load_function("serve")
    ctx = context_for(default_topology(), "serve")
    out = serve.handler(http_api_event("OPTIONS", "/v1/models/churn:predict", {}, b""), ctx)
    assert out["statusCode"] == 204 and out["headers"]["allow"] == "POST, OPTIONS"
    out = serve.handler(http_api_event("PUT", "/v1/models/churn:predict", {}, b"{}"), ctx)
    assert out["statusCode"] == 405 and json.loads(out["body"])["code"] == "method_not_allowed"
    reset_functions()


def test_12_second_rollback_goes_further_back_never_forward(backend):
    reg = backend.ctx.registry
    for v in (1, 2, 3):
        res = reg.reserve_version("m", f"run{v}", {})
        reg.complete_version("m", res.version, {"status": "registered"})
        reg.promote("m", v, actor="t", reason="x")
    assert reg.rollback("m", actor="t")["version"] == 2
    assert reg.rollback("m", actor="t")["version"] == 1  # not 3 again
    with pytest.raises(Exception, match="no previous champion"):
        reg.rollback("m", actor="t")
    reg.promote("m", 3, actor="t", reason="x")  # 1 -> 3, then undo it
    assert reg.rollback("m", actor="t")["version"] == 1
    moves = [(h["action"], h["from_version"], h["to_version"]) for h in reg.history("m")]
    assert moves[-3:] == [("rollback", 2, 1), ("promote", 1, 3), ("rollback", 3, 1)]


def test_12_labels_says_why_it_rejects_a_file(trained, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,outcome\nabc,1\n")
    r = cli(trained.settings.workspace, "labels", labels, "-m", "churn")
    assert r.exit_code == 1
    assert "churned" in r.stdout and "missing" in r.stdout  # the reason, from core
    assert "churned" in r.stderr  # and in the progress line


def test_12_schedule_events_use_the_configured_region(monkeypatch):
    from mlops_kit.emulate import Emulator, LambdaContext, schedule_event

    rule = "arn:aws:events:eu-west-2:123456789012:rule/mlops-kit-monitor"
    assert schedule_event(rule)["region"] == "eu-west-2"
    assert schedule_event(rule, "ap-south-1")["region"] == "ap-south-1"
    assert Emulator(region="eu-central-1").region == "eu-central-1"
    monkeypatch.setenv("MLOPSKIT_REGION", "eu-west-3")
    assert ":eu-west-3:" in LambdaContext("serve").invoked_function_arn


# -- 13. no progress while long steps run; serving lags a promotion by 30 s ------------------
def test_13_upload_reports_each_step_with_its_time(tmp_path):
    ws = tmp_path / "ws"
    spec = tmp_path / "churn.yaml"
    spec.write_text(yaml.safe_dump(FAST_SPEC))
    cli(ws, "spec", "apply", spec)
    data = tmp_path / "churn.csv"
    data.write_bytes(churn_csv(600, seed=13))
    r = cli(ws, "upload", data, "-m", "churn", "--json")
    steps = json.loads(r.stdout)["steps"]
    assert [s["step"] for s in steps] == ["uploaded", "validated", "trained", "exported",
                                          "parity", "registered", "promoted"]
    assert all(isinstance(s["seconds"], float) and s["seconds"] >= 0 for s in steps)
    # issue 26: the file's columns the spec does not use are named first (one warning line)
    warning, *lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert warning.startswith("warning: ") and "'customer_id'" in warning
    assert len(lines) == 7 and all(x.rstrip().endswith(" s)") for x in lines)


def test_13_serving_follows_a_promotion_within_the_refresh_interval(trained):
    from mlops_kit.core.serving.service import ModelService
    from mlops_kit.settings import Settings

    assert Settings().refresh_seconds <= 2.0  # the default every runtime gets (emulate too)
    now = [0.0]
    reg = trained.ctx.registry
    svc = ModelService(trained.ctx.store, reg, monotonic=lambda: now[0])
    assert svc.refresh_seconds <= 2.0
    record = feature_records(1)
    assert svc.predict("churn", record)["version"] == 1
    v1 = reg.get_version("churn", 1)
    res = reg.reserve_version("churn", "copy-of-v1", {})
    for name in ("model.onnx", "spec.json"):  # v2: the same artifact, registered and promoted
        trained.ctx.store.put(f"models/churn/{res.version:06d}/{name}",
                              trained.ctx.store.get(f"models/churn/000001/{name}"))
    reg.complete_version("churn", res.version, {k: v1[k] for k in ("status", "sha256", "classes")})
    reg.promote("churn", res.version, actor="t", reason="x")
    assert svc.predict("churn", record)["version"] == 1  # cached until the next check
    now[0] = svc.refresh_seconds + 0.01
    assert svc.predict("churn", record)["version"] == 2

