"""Bring your own table (issue 26): CSV -> `spec init` -> `spec apply` -> `upload` -> a served
champion, with no edit of the generated spec, for scikit-learn's breast_cancer and diabetes and
a messy customers table (unique customer_id, signup_date, free-text comment, numerics with
missing values, a 40-level categorical with rare levels, a yes/no column, churned/stayed).
The CLI runs as a subprocess, as a user runs it; the raw record predicted is a row of the
table as it stands (id, date string, free text, "yes")."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from tests.support import make_backend, store_captures

pytestmark = pytest.mark.slow


def spawn(ws, *args):
    r = subprocess.run([sys.executable, "-m", "mlops_kit", *map(str, args)],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "MLOPSKIT_WORKSPACE": str(ws), "OMP_NUM_THREADS": "1"})
    return r


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return json.loads(r.stdout) if r.stdout.strip().startswith("{") else r.stdout


def write_csv(path, header, rows):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def customers(path, n=1500, seed=7):
    rng = np.random.default_rng(seed)
    plans = [f"plan_{i:02d}" for i in range(40)]
    weights = 0.85 ** np.arange(40)
    words = ["slow", "great", "support", "price", "app", "crash", "love", "bill"]
    rows = []
    for i in rng.permutation(n):
        tenure = int(rng.integers(0, 72))
        charges = rng.normal(70, 20)
        news = rng.random() < 0.5
        score = -0.05 * tenure + 0.02 * (charges - 70) + (0.8 if news else 0) + rng.normal(0, .7)
        rows.append([
            f"CUST-{i:06d}",
            f"20{rng.integers(15, 25)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}",
            "" if rng.random() < 0.3 else " ".join(rng.choice(words, rng.integers(2, 7))),
            tenure,
            "" if rng.random() < 0.08 else f"{charges:.2f}",
            rng.choice(plans, p=weights / weights.sum()),
            rng.choice(["yes", "Yes", "Y"]) if news else rng.choice(["no", "No", "N"]),
            "churned" if score > -0.9 else "stayed",
        ])
    write_csv(path, ["customer_id", "signup_date", "comment", "tenure", "monthly_charges",
                     "plan", "newsletter", "status"], rows)
    return rows


def sklearn_table(path, loader, target):
    data = loader()
    header = [str(c).replace(" ", "_") for c in data.feature_names] + [target]
    rows = [[*map(float, x), y] for x, y in zip(data.data, data.target, strict=True)]
    write_csv(path, header, rows)
    return header, rows


def init_apply_upload(tmp_path, ws, data, target, name):
    spec_path = tmp_path / f"{name}.yaml"
    init = ok(spawn(ws, "spec", "init", data, "--target", target, "--name", name,
                    "-o", spec_path, "--json"))
    spec_text = spec_path.read_text()
    check = ok(spawn(ws, "spec", "check", spec_path, "--data", data, "--json"))
    assert check["data"]["passed"], check
    applied = ok(spawn(ws, "spec", "apply", spec_path, "--json"))
    assert applied["model"] == name
    up = ok(spawn(ws, "upload", data, "--model", name, "--json"))
    assert [r["status"] for r in up["results"]] == ["validated", "registered"], up
    assert up["steps"][-1]["step"] == "promoted"
    return init, yaml.safe_load(spec_text), up


def test_breast_cancer_and_diabetes(tmp_path):
    from sklearn.datasets import load_breast_cancer, load_diabetes

    ws = tmp_path / "ws"
    bc = tmp_path / "breast_cancer.csv"
    header, rows = sklearn_table(bc, load_breast_cancer, "malignant")
    init, spec, _ = init_apply_upload(tmp_path, ws, bc, "malignant", "breast-cancer")
    assert init["task"] == "binary_classification" and len(init["features"]) == 30
    assert init["confirm"] == ["positive_class"] and init["positive_class"] == "0"
    record = dict(zip(header[:-1], rows[0][:-1], strict=True))
    out = ok(spawn(ws, "predict", "breast-cancer", "--data", json.dumps(record), "--json"))
    assert out["predictions"] in ([0], [1]) and len(out["probabilities"][0]) == 2

    db = tmp_path / "diabetes.csv"
    header, rows = sklearn_table(db, load_diabetes, "progression")
    init, spec, up = init_apply_upload(tmp_path, ws, db, "progression", "diabetes")
    assert init["task"] == "regression" and spec["promotion"]["metric"] == "rmse"
    version = make_backend(ws).ctx.registry.get_version("diabetes", up["results"][-1]["version"])
    assert version["parity"]["passed"] and version["parity"]["tolerance_kind"] == "relative"
    record = dict(zip(header[:-1], rows[5][:-1], strict=True))
    out = ok(spawn(ws, "predict", "diabetes", "--data", json.dumps(record), "--json"))
    assert isinstance(out["predictions"][0], float)


def test_messy_customers_table(tmp_path):
    ws = tmp_path / "ws"
    data = tmp_path / "customers.csv"
    rows = customers(data)
    init, spec, _ = init_apply_upload(tmp_path, ws, data, "status", "customers")
    kinds = {f["name"]: f["type"] for f in init["features"]}
    assert kinds == {"tenure": "numeric", "monthly_charges": "numeric", "plan": "categorical",
                     "newsletter": "boolean", "comment": "text", "signup_date": "datetime"}
    plan = next(f for f in spec["features"] if f.get("name") == "plan")
    assert plan["max_categories"] == 30 and "categories" not in plan  # 40 levels: a tail
    left = {c["name"]: c["reason"] for c in init["not_features"]}
    assert left["customer_id"].startswith("identifier-like")
    assert init["positive_class"] in ("churned", "stayed") and init["confirm"]
    ids = [f["name"] for f in spec["features"] if f.get("role") == "id"]
    assert ids == ["customer_id"]
    # a raw row of the table: id, date string, free text and "yes" as they are
    header = ["customer_id", "signup_date", "comment", "tenure", "monthly_charges", "plan",
              "newsletter"]
    raw = dict(zip(header, rows[0][:-1], strict=True))
    raw.update(customer_id="CUST-RAW-1", signup_date="2024-02-29", comment="app crash again",
               newsletter="yes", monthly_charges="", tenure=int(raw["tenure"]))
    raw["monthly_charges"] = None  # missing, as the table has it
    cli = ok(spawn(ws, "predict", "customers", "--data", json.dumps(raw), "--json"))
    assert cli["predictions"][0] in ("churned", "stayed")
    # served by the champion with captures on: the id is captured, never a model input
    b = make_backend(ws)
    svc = b.service()
    served = svc.predict("customers", [raw], request_id="raw-1")
    assert served["predictions"] == cli["predictions"]
    svc.capture.flush()
    captured = store_captures(b.ctx.store, "captures/customers/")
    assert [r["features"]["customer_id"] for r in captured] == ["CUST-RAW-1"]
    version = b.ctx.registry.get_version("customers", served["version"])
    assert version["parity"]["passed"]


def test_digits(tmp_path):
    from sklearn.datasets import load_digits

    ws = tmp_path / "ws"
    data = tmp_path / "digits.csv"
    header, rows = sklearn_table(data, load_digits, "digit")
    init, spec, _ = init_apply_upload(tmp_path, ws, data, "digit", "digits")
    assert init["task"] == "multiclass_classification" and init["positive_class"] is None
    assert spec["promotion"]["metric"] == "f1_macro"
    constant = {c["name"] for c in init["not_features"] if c["reason"].startswith("constant")}
    assert "pixel_0_0" in constant and len(init["features"]) + len(init["not_features"]) == 64
    record = dict(zip(header[:-1], rows[3][:-1], strict=True))
    out = ok(spawn(ws, "predict", "digits", "--data", json.dumps(record), "--json"))
    assert out["predictions"][0] in range(10) and len(out["probabilities"][0]) == 10
