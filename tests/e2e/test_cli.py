"""The CLI as a user runs it. Most tests run the typer app in-process (CliRunner: the same
parsing, options, exit codes and output streams, without a new interpreter per command); the
few marked `subprocess` spawn `python -m mlops_kit` for what only a real process shows (the
console script's last-resort guard, exit codes as the shell sees them, a server process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml
from typer.testing import CliRunner

from mlops_kit.cli.app import app
from mlops_kit.core.synthetic import broken_churn_csv, churn_csv
from tests.support import FAST_SPEC, apply_spec, feature_records, make_backend, post_prediction

runner = CliRunner()


def cli(ws, *args, check=True, env=None):
    r = runner.invoke(app, [str(a) for a in args],
                      env={"MLOPSKIT_WORKSPACE": str(ws), **(env or {})}, catch_exceptions=False)
    if check and r.exit_code != 0:
        raise AssertionError(f"exit {r.exit_code}\n{r.stdout}\n{r.stderr}")
    return r


def j(r):
    return json.loads(r.stdout)


def spawn(ws, *args, env=None):
    return subprocess.run([sys.executable, "-m", "mlops_kit", *map(str, args)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MLOPSKIT_WORKSPACE": str(ws), **(env or {})})


def test_full_operator_flow(tmp_path):
    ws = tmp_path / "ws"
    spec = tmp_path / "churn.yaml"
    spec.write_text(yaml.safe_dump(FAST_SPEC))
    applied = j(cli(ws, "spec", "apply", spec, "--json"))
    assert applied["key"] == "specs/churn.yaml" and applied["features"] == 7
    data = tmp_path / "churn.csv"
    data.write_bytes(churn_csv(900, seed=1))
    up = cli(ws, "upload", data, "--model", "churn", "--json")
    assert [r["status"] for r in j(up)["results"]] == ["validated", "registered"]
    # progress on stderr, one step per line with its time; stdout is the JSON alone
    assert [s["step"] for s in j(up)["steps"]] == [
        "uploaded", "validated", "trained", "exported", "parity", "registered", "promoted"]
    assert "✓ exported ONNX" in up.stderr and " s)" in up.stderr
    data2 = tmp_path / "churn2.csv"
    data2.write_bytes(churn_csv(900, seed=2))
    cli(ws, "upload", data2, "--model", "churn", "--json")
    listing = j(cli(ws, "registry", "list", "--json"))
    assert listing[0]["model"] == "churn" and listing[0]["versions"] == 2
    versions = j(cli(ws, "registry", "versions", "churn", "--json"))
    assert [v["status"] for v in versions] == ["registered", "registered"]
    champion = listing[0]["champion"]
    other = 1 if champion == 2 else 2
    promoted = j(cli(ws, "registry", "promote", "churn", other, "--json"))
    assert promoted["version"] == other
    rolled = j(cli(ws, "registry", "rollback", "churn", "--json"))
    assert rolled["version"] == champion
    history = j(cli(ws, "registry", "history", "churn", "--json"))
    assert [h["action"] for h in history][-2:] == ["promote", "rollback"]
    shown = j(cli(ws, "registry", "show", "churn", "--json"))
    assert shown["version"] == champion and shown["lineage"]["dataset_key"].startswith("datasets/")
    pred = j(cli(ws, "predict", "churn", "--data",
                 json.dumps({"instances": feature_records(2)}), "--json"))
    assert len(pred["predictions"]) == 2 and pred["version"] == champion
    human = cli(ws, "registry", "versions", "churn")
    assert "champion" in human.stdout


def test_errors_are_clear_and_nonzero(tmp_path):
    ws = tmp_path / "ws"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**FAST_SPEC, "features": [{"name": "x", "type": "numeric",
                                                               "min": 5, "max": 1}]}))
    r = cli(ws, "spec", "apply", bad, "--json", check=False)
    assert r.exit_code == 2
    out = j(r)
    assert "features.0" in out["error"] and "min" in out["error"]
    r = cli(ws, "predict", "churn", "--data", '{"instances": [{}]}', "--json", check=False)
    assert r.exit_code == 2 and "churn" in j(r)["error"]
    r = cli(ws, "registry", "rollback", "churn", check=False)
    assert r.exit_code == 2 and "error" in r.stderr
    r = cli(ws, "upload", tmp_path / "nope.csv", "-m", "churn", check=False)
    assert r.exit_code == 2 and "does not exist" in r.stderr  # usage, from typer


def test_quarantine_through_cli_exits_1_and_shows_the_rules(tmp_path):
    ws = tmp_path / "ws"
    spec = tmp_path / "churn.yaml"
    spec.write_text(yaml.safe_dump(FAST_SPEC))
    cli(ws, "spec", "apply", spec)
    data = tmp_path / "broken.csv"
    data.write_bytes(broken_churn_csv())
    r = cli(ws, "upload", data, "--model", "churn", "--json", check=False)
    assert r.exit_code == 1
    result = j(r)["results"][0]
    assert result["status"] == "quarantined"
    assert result["quarantine_key"] == "quarantine/churn/broken.csv"
    assert (ws / "store" / "datasets" / "churn" / "broken.csv").exists()
    rules = {(x["rule"], x["column"]): x for x in result["failed_rules"]}
    assert rules[("range", "age")]["count"] == 2
    assert rules[("type", "monthly_charges")]["examples"][0]["value"] == "lots"
    human = cli(ws, "upload", data, "--model", "churn", check=False)
    assert human.exit_code == 1
    for text in ("range", "age", "monthly_charges", "lots", "atlantis"):
        assert text in human.stdout, human.stdout


def test_every_command_takes_json():
    import typer.main

    group = typer.main.get_command(app)
    missing = []

    def walk(cmd, path):
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])
        options = {o for p in cmd.params for o in getattr(p, "opts", [])}
        if not getattr(cmd, "commands", None) and "--json" not in options:
            missing.append(" ".join(path))

    walk(group, [])
    assert not missing, missing


@pytest.mark.slow
def test_demo_json(tmp_path):
    r = cli(tmp_path, "demo", "--json", "--workspace", tmp_path / "demo", "--rows", "1500")
    d = j(r)
    assert d["model"] == "churn" and d["version"] == 1 and d["promoted"] and d["failed"] is False
    assert d["parity"]["passed"] and d["metrics"]["roc_auc"] > 0.6
    assert d["example_prediction"]["status"] == 200
    assert len(d["example_prediction"]["predictions"]) == 2
    assert d["bad_request"]["status"] == 400 and d["bad_request"]["field"] == "age"
    assert d["unauthenticated_status"] == 401
    assert d["drift"]["drifted"] is True and d["drift"]["drifted_features"]
    assert d["quarantined_key"] == "quarantine/churn/churn-broken.csv"
    assert d["quarantine"]["original_kept"] is True
    assert "promoted to champion" in r.stderr


def test_labels_then_monitor_reports_live_quality(trained, tmp_path):
    """Serve, capture, upload late labels through the CLI, monitor: live metrics appear."""
    svc = trained.service()
    ids, preds = [], []
    for i in range(60):
        out = svc.predict("churn", feature_records(1, seed=100 + i), request_id=f"q{i}")
        ids.append(out["request_id"])
        preds.append(out["predictions"][0])
    svc.capture.flush()
    labels = tmp_path / "labels.csv"
    # label every request with the model's own answer: live accuracy must be exactly 1.0
    labels.write_text("request_id,churned\n" + "".join(f"{i},{p}\n" for i, p in zip(ids, preds)))
    ws = trained.settings.workspace
    up = j(cli(ws, "labels", labels, "--model", "churn", "--json"))
    assert up["results"][0]["status"] == "labels_received"
    report = j(cli(ws, "monitor", "churn", "--window-hours", "1", "--json"))
    champion = report["quality"]["champion"]
    assert champion["metrics"]["accuracy"] == 1.0
    assert report["quality"]["labels"]["matched_rows"] == 60 and champion["labelled"] == 60
    assert report["quality"]["labels"]["coverage"] == 1.0
    path = cli(ws, "report", "churn", "--path").stdout.strip()
    with open(path) as f:
        assert path.endswith(".html") and "<svg" in f.read()


# -- real processes ---------------------------------------------------------------------
def test_subprocess_exit_codes_strict_json_and_no_traceback(tmp_path):
    """As the shell sees it: 0 done, 1 the job failed, 2 usage; --json stdout is one strict
    JSON document in every case; an unexpected error is one line (traceback with -v)."""
    ws = tmp_path / "ws"
    apply_spec(make_backend(ws), FAST_SPEC)
    data = tmp_path / "broken.csv"
    data.write_bytes(broken_churn_csv())
    r = spawn(ws, "upload", data, "-m", "churn", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in --json"))
    assert doc["results"][0]["status"] == "quarantined"
    r = spawn(ws, "registry", "show", "nosuch", "--json")
    assert r.returncode == 2 and "error" in json.loads(r.stdout)
    r = spawn(ws, "upload", "--json")
    assert r.returncode == 2 and "Missing argument" in r.stderr
    # an unexpected failure: the table is not a database any more
    (ws / "registry.db").write_bytes(b"this is not sqlite" * 100)
    for f in ws.glob("registry.db-*"):
        f.unlink()
    r = spawn(ws, "registry", "list", "--json")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "--verbose" in r.stderr and json.loads(r.stdout)["code"]
    r = spawn(ws, "--verbose", "registry", "list")
    assert r.returncode == 1 and "Traceback" in r.stderr


def test_serve_subprocess_with_token_and_rotation(trained):
    """`mlops-kit serve` as a user starts it: token shown once, requests need it; a rotated
    token reaches the running server within about a second (issue 12, item 6)."""
    ws = trained.settings.workspace
    env = {**os.environ, "MLOPSKIT_WORKSPACE": str(ws)}
    proc = subprocess.Popen([sys.executable, "-m", "mlops_kit", "serve", "--port", "0", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        info = json.loads(proc.stdout.readline())
        assert info["auth"] is True and info["token"].startswith("mk_")
        url = f"{info['url']}/v1/models/churn:predict"
        assert post_prediction(url, info["token"]) == 200
        assert post_prediction(url, None) == 401
        stored = json.loads((ws / "auth.json").read_text())
        assert info["token"] not in json.dumps(stored)  # stored hashed only

        new = j(cli(ws, "token", "--rotate", "--json"))["token"]
        rotated_at = time.monotonic()
        while post_prediction(url, info["token"]) != 401:
            assert time.monotonic() - rotated_at < 5, "the old token still works after 5 s"
            time.sleep(0.05)
        assert post_prediction(url, new) == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)

