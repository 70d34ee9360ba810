"""spec init: the streamed profile, the decisions and the YAML they become (core/spec_infer.py,
core/spec_render.py), and the command as a user runs it."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from mlops_kit.cli.app import app
from mlops_kit.core import spec_infer
from mlops_kit.core.spec import load_spec_bytes
from mlops_kit.core.spec_infer import infer, profile_stream
from mlops_kit.core.spec_render import feature_types, render_spec
from mlops_kit.errors import ValidationError

runner = CliRunner()


def customers(n: int = 600, seed: int = 0) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    plans = [f"plan_{i:02d}" for i in range(40)]
    p = np.array([0.8 ** i for i in range(40)])
    churned = rng.random(n) < 0.25
    return {
        "row": list(range(1, n + 1)),
        "customer_id": [f"C{i:06d}" for i in rng.permutation(n)],
        "signup_date": [f"2020-{m:02d}-{d:02d}" for m, d in
                        zip(rng.integers(1, 13, n), rng.integers(1, 29, n), strict=True)],
        "comment": [" ".join(rng.choice(["slow", "great", "price", "app", "bill"], 4))
                    if rng.random() < 0.7 else "" for _ in range(n)],
        "age": [int(a) for a in rng.integers(18, 80, n)],
        "income": ["" if rng.random() < 0.1 else f"{v:.2f}" for v in rng.normal(5e4, 1e4, n)],
        "plan": list(rng.choice(plans, n, p=p / p.sum())),
        "newsletter": list(rng.choice(["yes", "no", "Yes"], n)),
        "const": ["x"] * n,
        "sparse": ["" if i % 50 else "v" for i in range(n)],
        "leak": ["gone" if c else "here" for c in churned],
        "churn": ["churned" if c else "stayed" for c in churned],
    }


def as_csv(cols: dict[str, list], sep: str = ",") -> bytes:
    names = list(cols)
    lines = [sep.join(names)] + [sep.join(str(cols[c][i]) for c in names)
                                 for i in range(len(cols[names[0]]))]
    return ("\n".join(lines) + "\n").encode()


def inferred(raw: bytes, target: str, fmt="csv", **kw):
    profiles, _ = profile_stream(io.BytesIO(raw), fmt, chunk_bytes=4096)
    return infer(profiles, target, types={"numeric", "categorical"}, **kw)


def test_customers_table_roles_and_types():
    inf = inferred(as_csv(customers()), "churn", max_categories=15)
    assert inf.task == "binary_classification" and inf.positive_class == "churned"
    feats = {d.profile.name: d for d in inf.features}
    assert {n: d.kind for n, d in feats.items()} == {
        "age": "numeric", "income": "numeric", "plan": "categorical",
        "newsletter": "boolean"}
    left = {d.profile.name: d.reason for d in inf.columns if d.reason}
    assert left["row"] == "identifier-like: a monotonic integer key"
    assert left["customer_id"].startswith("identifier-like: 100% of values unique")
    assert left["const"].startswith("constant")
    assert left["sparse"].startswith("almost all missing")
    assert left["leak"].startswith("target leakage")
    assert left["signup_date"].startswith("datetime: not a feature type")
    assert left["comment"].startswith("text: not a feature type")
    # ranges widen outwards; a non-negative column stays >= 0; nulls make it nullable
    age = feats["age"]
    assert age.min <= age.profile.min and age.max >= age.profile.max and age.min >= 0
    assert feats["income"].profile.nulls > 0
    assert feats["plan"].categories is None  # more than max_categories distinct values


def test_rendered_yaml_is_a_valid_spec_with_evidence_and_quoted_yes_no():
    inf = inferred(as_csv(customers()), "churn")
    text = render_spec(inf, "customers", source="c.csv", types={"numeric", "categorical"})
    spec = load_spec_bytes(text.encode())
    assert spec.target == "churn" and spec.task.value == "binary_classification"
    assert spec.feature_names == ["age", "income", "plan", "newsletter"]
    news = next(f for f in spec.features if f.name == "newsletter")
    assert sorted(news.categories) == ["Yes", "no", "yes"]  # strings, not YAML booleans
    assert spec.validation.max_null_fraction == 0.2  # no feature needs more
    assert spec.ids == ["row", "customer_id"]  # not features; carried into captures
    assert set(spec.ignored) == {"signup_date", "comment", "const", "sparse", "leak"}
    assert "  - {name: customer_id, role: id}" in text and "# identifier-like" in text
    assert "# CONFIRM: positive class proposed as the minority class churned" in text
    assert "  # numeric: " in text and "% missing" in text and "e.g." in text
    assert next(f for f in spec.features if f.name == "income").nullable


@pytest.mark.parametrize("target,task,metric", [
    ("churn", "binary_classification", "roc_auc"),
    ("tier", "multiclass_classification", "f1_macro"),
    ("spend", "regression", "rmse"),
])
def test_task_and_promotion_metric_follow_the_target(target, task, metric):
    rng = np.random.default_rng(1)
    n = 300
    x = rng.normal(size=n)
    cols = {"x": [f"{v:.4f}" for v in x], "z": [f"{v:.3f}" for v in rng.normal(size=n)],
            "churn": [int(v > 0.5) for v in x + rng.normal(size=n)],
            "tier": [["a", "b", "c"][i % 3] for i in range(n)],
            "spend": [f"{v * 10 + r:.3f}" for v, r in zip(x, rng.normal(size=n), strict=True)]}
    for other in ("churn", "tier", "spend"):
        if other != target:
            cols.pop(other)
    inf = inferred(as_csv(cols), target)
    assert inf.task == task
    spec = load_spec_bytes(render_spec(inf, "m", source="d.csv").encode())
    assert spec.promotion.metric == metric
    assert spec.feature_names == ["x", "z"]


def test_parquet_native_types_and_bounded_tracking(monkeypatch):
    monkeypatch.setattr(spec_infer, "TRACK_DISTINCT", 50)
    n = 400
    table = pa.table({"key": pa.array([f"k{i}" for i in range(n)]),
                      "flag": pa.array([i % 3 == 0 for i in range(n)]),
                      "v": pa.array(np.arange(n) % 7, pa.int32()),
                      "y": pa.array([float(i % 5) * 1.5 + 0.1 * (i % 11) for i in range(n)])})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=64)
    profiles, names = profile_stream(io.BytesIO(buf.getvalue()), "parquet", chunk_bytes=2048)
    assert names == ["key", "flag", "v", "y"]
    key = profiles[0]
    assert key.counts is None and key.unique_ratio == 1.0  # counted per batch past the cap
    inf = infer(profiles, "y", types={"numeric", "categorical"})
    assert inf.task == "regression"
    kinds = {d.profile.name: (d.kind, d.reason) for d in inf.columns}
    assert kinds["flag"] == ("boolean", None) and kinds["v"] == ("numeric", None)
    assert kinds["key"][1].startswith("identifier-like")


def test_a_misspelled_target_gets_a_did_you_mean():
    with pytest.raises(ValidationError, match=r"'churm' is not a column.*did you mean 'churn'"):
        inferred(as_csv(customers(100)), "churm")


def test_leakage_on_a_numeric_threshold():
    n = 200
    cols = {"score": [str(i) for i in np.random.default_rng(2).permutation(n)],
            "noise": [f"{v:.3f}" for v in np.random.default_rng(3).normal(size=n)]}
    cols["y"] = ["a" if int(s) < 80 else "b" for s in cols["score"]]
    left = {d.profile.name: d.reason for d in inferred(as_csv(cols), "y").columns}
    assert left["score"].startswith("target leakage") and left["noise"] is None


def test_feature_types_reads_the_spec_union():
    assert {"numeric", "categorical", "boolean"} <= feature_types()


def test_a_yes_no_column_becomes_a_boolean_feature_when_the_spec_has_the_type():
    inf = inferred(as_csv(customers()), "churn")
    spec = load_spec_bytes(render_spec(inf, "c", source="c.csv").encode())
    news = next(f for f in spec.features if f.name == "newsletter")
    assert news.type == "boolean" and news.parse("Yes") == 1.0


# -- the command ---------------------------------------------------------------------------
def test_cli_writes_the_spec_and_json(tmp_path):
    data = tmp_path / "Customers 2024.csv"
    data.write_bytes(as_csv(customers()))
    out = tmp_path / "spec.yaml"
    r = runner.invoke(app, ["spec", "init", str(data), "--target", "churn", "-o", str(out),
                            "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["model"] == "customers_2024" and doc["confirm"] == ["positive_class"]
    assert {c["name"] for c in doc["not_features"]} >= {"customer_id", "row", "const"}
    assert yaml.safe_load(out.read_text())["name"] == "customers_2024"
    again = runner.invoke(app, ["spec", "init", str(data), "--target", "churn", "-o", str(out)])
    assert again.exit_code == 2 and "--force" in again.stderr
    bad = runner.invoke(app, ["spec", "init", str(data), "--target", "nope", "--json"])
    assert bad.exit_code == 2 and "not a column" in json.loads(bad.stdout)["error"]
    fmt = runner.invoke(app, ["spec", "init", str(out), "--target", "churn"])
    assert fmt.exit_code == 2 and "use a .csv or .parquet file" in fmt.stderr


def test_positive_class_is_a_key_only_when_the_spec_has_the_field():
    inf = inferred(as_csv(customers()), "churn")
    as_key = render_spec(inf, "c", source="c.csv", positive_key=True)
    as_comment = render_spec(inf, "c", source="c.csv", positive_key=False)
    assert "\npositive_class: churned\n" in as_key
    assert "\n# positive_class: churned\n" in as_comment
    load_spec_bytes(render_spec(inf, "c", source="c.csv").encode())  # the default parses
