"""Issue 26's `boolean` feature type and `role: id | ignore` columns, through the real local
lifecycle: validation, training, ONNX export with the parity gate, serving (every accepted
spelling encodes alike) and captures (the id column is carried, never a model input)."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_kit.core.features import coerce_boolean, records_to_inputs
from mlops_kit.core.spec import parse_spec
from mlops_kit.errors import SpecError, ValidationError
from mlops_kit.local.worker import put_object, run_once
from tests.support import apply_spec, make_backend, store_captures

SPEC = {
    "name": "subs", "task": "binary_classification", "target": "churned",
    "positive_class": "churned",
    "features": [
        {"name": "tenure", "type": "numeric", "min": 0, "max": 100},
        {"name": "newsletter", "type": "boolean", "nullable": True},
        {"name": "paperless", "type": "boolean"},
        {"name": "customer_id", "role": "id"},
        {"name": "notes", "role": "ignore"},
    ],
    "estimator": {"kind": "logistic_regression"},
    "validation": {"unknown_columns": "reject", "min_rows": 50},
}
SPELL_YES = ["yes", "Yes", "Y", "TRUE", "t", "1"]
SPELL_NO = ["no", "N", "false", "F", "0"]


def subs_csv(n: int = 600, seed: int = 0, bad: str | None = None) -> bytes:
    rng = np.random.default_rng(seed)
    lines = ["customer_id,tenure,newsletter,paperless,notes,churned"]
    for i in range(n):
        tenure = int(rng.integers(0, 72))
        news = rng.random() < 0.5
        paper = rng.random() < 0.4
        score = -0.04 * tenure + 1.5 * news - 1.0 * paper + rng.normal(0, 0.5)
        spelled = "" if rng.random() < 0.1 else (
            rng.choice(SPELL_YES) if news else rng.choice(SPELL_NO))
        paper_s = rng.choice(SPELL_YES) if paper else rng.choice(SPELL_NO)
        if bad is not None and i == 7:
            paper_s = bad
        lines.append(f"C{i:05d},{tenure},{spelled},{paper_s},note {i},"
                     f"{'churned' if score > -0.5 else 'stayed'}")
    return ("\n".join(lines) + "\n").encode()


def test_roles_leave_features_and_keep_the_hash_of_a_spec_without_them():
    spec = parse_spec(SPEC)
    assert spec.feature_names == ["tenure", "newsletter", "paperless"]
    assert spec.ids == ["customer_id"] and spec.ignored == ["notes"]
    plain = parse_spec({**SPEC, "features": SPEC["features"][:3]})
    assert "ids" not in plain.canonical_json() and parse_spec(
        __import__("json").loads(spec.canonical_json())) == spec
    with pytest.raises(Exception, match="role.*'key' is not one of"):
        parse_spec({**SPEC, "features": [*SPEC["features"], {"name": "x", "role": "key"}]})

    # ids/ignored that are not lists: pydantic's error naming the field (was a TypeError for
    # `ids: true`, and `ids: customer_id` became one id per character)
    for key, value in (("ids", True), ("ids", "customer_id"), ("ignored", 5)):
        with pytest.raises(SpecError, match=f"{key}: Input should be a valid list"):
            parse_spec({**SPEC, key: value})


def test_boolean_spellings_encode_alike_and_a_wrong_one_names_the_field():
    f = parse_spec(SPEC).features[2]
    assert {coerce_boolean("p", v, f, 0) for v in [*SPELL_YES, True, 1, " yes "]} == {1.0}
    assert {coerce_boolean("p", v, f, 0) for v in [*SPELL_NO, False, 0, 0.0]} == {0.0}
    for wrong in ("maybe", 2, "2", [True]):
        with pytest.raises(ValidationError, match=r"instances\[0\]\.p: .*not a boolean"):
            coerce_boolean("p", wrong, f, 0)
    with pytest.raises(ValidationError, match="not nullable"):
        coerce_boolean("p", None, f, 0)


def test_lifecycle_parity_serving_and_captured_ids(tmp_path):
    b = make_backend(tmp_path / "ws")
    apply_spec(b, SPEC)
    put_object(b, "datasets/subs/one.csv", subs_csv())
    results = run_once(b)
    out = results[-1]
    assert out["status"] == "registered", out
    version = b.ctx.registry.get_version("subs", out["version"])
    parity = version["parity"]
    assert parity["passed"] and parity["rows"] > 50 and parity["tolerance_kind"] == "absolute"
    svc = b.service()
    base = {"tenure": 12, "customer_id": "C-77"}
    answers = [svc.predict("subs", [{**base, "newsletter": y, "paperless": n}],
                           request_id=f"r{i}")
               for i, (y, n) in enumerate([("yes", "no"), ("Y", "F"), (True, False), (1, 0),
                                           ("TRUE", "0")])]
    assert len({str(a["probabilities"]) for a in answers}) == 1
    missing = svc.predict("subs", [{**base, "newsletter": None, "paperless": "no"}])
    assert missing["predictions"]
    with pytest.raises(ValidationError, match="paperless: 'maybe' is not a boolean"):
        svc.predict("subs", [{**base, "newsletter": "yes", "paperless": "maybe"}])
    svc.capture.flush()
    rows = store_captures(b.ctx.store, "captures/subs/")
    assert [r["features"]["customer_id"] for r in rows] == ["C-77"] * 6
    feed = records_to_inputs(parse_spec(SPEC), [{**base, "newsletter": "y", "paperless": "n"}])
    assert feed["newsletter"].dtype == np.float32 and feed["customer_id"][0, 0] == "C-77"


def test_a_value_that_is_no_boolean_spelling_quarantines_the_dataset(tmp_path):
    b = make_backend(tmp_path / "ws")
    apply_spec(b, SPEC)
    put_object(b, "datasets/subs/bad.csv", subs_csv(bad="maybe"))
    out = run_once(b)[0]
    assert out["status"] == "quarantined", out
