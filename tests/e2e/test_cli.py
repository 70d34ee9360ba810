"""The CLI as a user runs it: a subprocess, with --json output parsed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from mlops_kit.core.synthetic import broken_churn_csv, churn_csv
from tests.support import FAST_SPEC, feature_records


def cli(ws, *args, check=True):
    env = {**os.environ, "MLOPSKIT_WORKSPACE": str(ws)}
    r = subprocess.run([sys.executable, "-m", "mlops_kit", *args], capture_output=True,
                       text=True, env=env, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def j(r):
    return json.loads(r.stdout)


def test_full_operator_flow(tmp_path):
    ws = tmp_path / "ws"
    spec = tmp_path / "churn.yaml"
    spec.write_text(yaml.safe_dump(FAST_SPEC))
    applied = j(cli(ws, "spec", "apply", str(spec), "--json"))
    assert applied["key"] == "specs/churn.yaml" and applied["features"] == 7
    data = tmp_path / "churn.csv"
    data.write_bytes(churn_csv(900, seed=1))
    up = j(cli(ws, "upload", str(data), "--model", "churn", "--json"))
    assert [r["status"] for r in up["results"]] == ["validated", "registered"]
    data2 = tmp_path / "churn2.csv"
    data2.write_bytes(churn_csv(900, seed=2))
    cli(ws, "upload", str(data2), "--model", "churn", "--json")
    listing = j(cli(ws, "registry", "list", "--json"))
    assert listing[0]["model"] == "churn" and listing[0]["versions"] == 2
    versions = j(cli(ws, "registry", "versions", "churn", "--json"))
    assert [v["status"] for v in versions] == ["registered", "registered"]
    champion = listing[0]["champion"]
    other = 1 if champion == 2 else 2
    promoted = j(cli(ws, "registry", "promote", "churn", str(other), "--json"))
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
    r = cli(ws, "spec", "apply", str(bad), "--json", check=False)
    assert r.returncode == 2
    out = j(r)
    assert "features.0" in out["error"] and "min" in out["error"]
    r = cli(ws, "predict", "churn", "--data", '{"instances": [{}]}', "--json", check=False)
    assert r.returncode == 2 and "churn" in j(r)["error"]
    r = cli(ws, "registry", "rollback", "churn", check=False)
    assert r.returncode == 2 and "error" in r.stderr


def test_quarantine_through_cli(tmp_path):
    ws = tmp_path / "ws"
    spec = tmp_path / "churn.yaml"
    spec.write_text(yaml.safe_dump(FAST_SPEC))
    cli(ws, "spec", "apply", str(spec))
    data = tmp_path / "broken.csv"
    data.write_bytes(broken_churn_csv())
    out = j(cli(ws, "upload", str(data), "--model", "churn", "--json"))
    assert out["results"][0]["status"] == "quarantined"
    assert out["results"][0]["quarantine_key"] == "quarantine/churn/broken.csv"
    assert (ws / "store" / "datasets" / "churn" / "broken.csv").exists()


@pytest.mark.slow
def test_demo_json(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mlops_kit", "demo", "--json", "--workspace",
                        str(tmp_path / "demo"), "--rows", "1500"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["model"] == "churn" and d["version"] == 1 and d["promoted"]
    assert d["parity"]["passed"] and d["metrics"]["roc_auc"] > 0.6
    assert d["example_prediction"]["status"] == 200
    assert len(d["example_prediction"]["predictions"]) == 2
    assert d["bad_request"]["status"] == 400 and d["bad_request"]["field"] == "age"
    assert d["unauthenticated_status"] == 401
    assert d["drift"]["drifted"] is True and d["drift"]["drifted_features"]
    assert d["quarantined_key"] == "quarantine/churn/churn-broken.csv"
    assert d["quarantine"]["original_kept"] is True


def test_serve_subprocess_with_token(trained):
    """`mlops-kit serve` as a user starts it: token shown once, requests need it."""
    import urllib.error
    import urllib.request

    ws = trained.settings.workspace
    env = {**os.environ, "MLOPSKIT_WORKSPACE": str(ws)}
    proc = subprocess.Popen([sys.executable, "-m", "mlops_kit", "serve", "--port", "0", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        info = json.loads(proc.stdout.readline())
        assert info["auth"] is True and info["token"].startswith("mk_")
        body = json.dumps({"instances": feature_records(1)}).encode()
        req = urllib.request.Request(f"{info['url']}/v1/models/churn:predict", data=body,
                                     headers={"authorization": f"Bearer {info['token']}",
                                              "content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert json.loads(resp.read())["version"] == 1
        anon = urllib.request.Request(f"{info['url']}/v1/models/churn:predict", data=body)
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(anon, timeout=30)
        assert exc.value.code == 401
        stored = json.loads((ws / "auth.json").read_text())
        assert info["token"] not in json.dumps(stored)  # stored hashed only
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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
    up = j(cli(ws, "labels", str(labels), "--model", "churn", "--json"))
    assert up["results"][0]["status"] == "labels_received"
    report = j(cli(ws, "monitor", "churn", "--window-hours", "1", "--json"))
    champion = report["quality"]["champion"]
    assert champion["metrics"]["accuracy"] == 1.0
    assert report["quality"]["labels"]["matched_rows"] == 60 and champion["labelled"] == 60
    assert report["quality"]["labels"]["coverage"] == 1.0
    path = cli(ws, "report", "churn", "--path").stdout.strip()
    with open(path) as f:
        assert path.endswith(".html") and "<svg" in f.read()
