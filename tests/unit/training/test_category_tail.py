"""Issue 26's long tail: categorical max_categories / min_frequency pool rare levels into one
`other` bucket (all-zero one-hot: sklearn and the ONNX graph alike, parity-gated), and
`unknown: other | error` decides what serving does with a value outside `categories`."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_kit.core.features import OTHER_CATEGORY, coerce_category
from mlops_kit.core.spec import parse_spec
from mlops_kit.errors import SpecError, ValidationError
from mlops_kit.local.worker import put_object, run_once
from tests.support import apply_spec, make_backend

PLANS = [f"plan_{i:02d}" for i in range(40)]


def spec(**plan):
    return {"name": "tail", "task": "binary_classification", "target": "y",
            "features": [{"name": "x", "type": "numeric"},
                         {"name": "plan", "type": "categorical", **plan}],
            "estimator": {"kind": "logistic_regression"}, "validation": {"min_rows": 50}}


def tail_csv(n=1200, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    w = 0.85 ** np.arange(40)
    lines = ["x,plan,y"]
    for _ in range(n):
        x = rng.normal()
        plan = rng.choice(PLANS, p=w / w.sum())
        y = int(x + (0.8 if plan in PLANS[:3] else 0) + rng.normal(0, 0.7) > 0.3)
        lines.append(f"{x:.4f},{plan},{y}")
    return ("\n".join(lines) + "\n").encode()


def test_tail_options_leave_the_hash_of_specs_without_them_alone():
    plain = parse_spec(spec())
    assert "max_categories" not in plain.canonical_json()
    assert parse_spec(spec(max_categories=8)).spec_hash() != plain.spec_hash()
    with pytest.raises(SpecError, match="unknown: error needs the categories listed"):
        parse_spec(spec(unknown="error"))


def test_unknown_other_pools_and_error_refuses():
    f = parse_spec(spec(categories=["a", "b"], unknown="other")).features[1]
    assert coerce_category("plan", "zzz", f, 0) == OTHER_CATEGORY
    g = parse_spec(spec(categories=["a", "b"])).features[1]
    with pytest.raises(ValidationError, match="is not one of"):
        coerce_category("plan", "zzz", g, 0)


@pytest.mark.parametrize("plan", [{"max_categories": 6}, {"min_frequency": 0.05},
                                  {"categories": PLANS[:5], "unknown": "other"}])
def test_tail_pooled_model_passes_parity_and_serves_rare_and_new_levels(tmp_path, plan):
    b = make_backend(tmp_path / "ws")
    apply_spec(b, spec(**plan))
    put_object(b, "datasets/tail/one.csv", tail_csv())
    out = run_once(b)[-1]
    assert out["status"] == "registered", out
    assert b.ctx.registry.get_version("tail", out["version"])["parity"]["passed"]
    svc = b.service(capture=False)
    rare = svc.predict("tail", [{"x": 0.1, "plan": "plan_39"}])
    new = svc.predict("tail", [{"x": 0.1, "plan": "never-seen"}])
    common = svc.predict("tail", [{"x": 0.1, "plan": "plan_00"}])
    assert rare["probabilities"] == new["probabilities"]  # one other bucket
    assert common["probabilities"] != rare["probabilities"]
