"""Issue 26's `text` feature: TF-IDF inside the ONNX graph (skl2onnx's text operators), raw
strings at serving, one normalisation (features.normalise_text) on both sides; parity-gated,
with the edge cases: empty text, punctuation and contractions, unicode, missing text."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_kit.core.features import normalise_text, records_to_inputs
from mlops_kit.core.spec import parse_spec
from mlops_kit.errors import ValidationError
from mlops_kit.local.worker import put_object, run_once
from tests.support import apply_spec, make_backend

WORDS = ["slow", "great", "support", "price", "app", "Crash!", "love", "bill", "can't",
         "école", "ÉCOLE", "x", "a-b"]


def spec(ngrams=1):
    return {"name": "notes", "task": "binary_classification", "target": "y",
            "features": [{"name": "x", "type": "numeric"},
                         {"name": "comment", "type": "text", "nullable": True,
                          "max_features": 40, "ngrams": ngrams}],
            "estimator": {"kind": "logistic_regression"},
            "validation": {"min_rows": 50, "max_null_fraction": 0.5}}


def notes_csv(n=900, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    lines = ["x,comment,y"]
    for _ in range(n):
        x = rng.normal()
        words = list(rng.choice(WORDS, rng.integers(0, 7)))
        text = "" if rng.random() < 0.15 else " ".join(words)
        crash = any(w.lower().startswith("crash") for w in words)
        y = int(x + (1.5 if crash else 0) + rng.normal(0, 0.5) > 0.8)
        lines.append(f'{x:.4f},"{text}",{y}')
    return ("\n".join(lines) + "\n").encode()


def test_normalise_text_is_idempotent_and_drops_what_sklearn_drops():
    assert normalise_text("Can't  STOP, crash!!") == "can stop crash"
    assert normalise_text("École a-b x") == "école"
    assert normalise_text(normalise_text("Great APP")) == "great app"
    assert normalise_text("") == ""


@pytest.mark.parametrize("ngrams", [1, 2])
def test_text_lifecycle_parity_and_raw_strings_at_serving(tmp_path, ngrams):
    b = make_backend(tmp_path / "ws")
    apply_spec(b, spec(ngrams))
    put_object(b, "datasets/notes/one.csv", notes_csv())
    out = run_once(b)[-1]
    assert out["status"] == "registered", out
    parity = b.ctx.registry.get_version("notes", out["version"])["parity"]
    assert parity["passed"] and parity["max_abs_diff"] < 1e-5
    svc = b.service(capture=False)
    p = {t: svc.predict("notes", [{"x": 0.2, "comment": t}])["probabilities"][0][1]
         for t in ["app CRASH!", "app crash", "", None, "zzz unknown words", "x"]}
    assert p["app CRASH!"] == p["app crash"] > p["zzz unknown words"]
    assert p[""] == p[None] == p["x"] == p["zzz unknown words"]  # no known terms
    with pytest.raises(ValidationError, match="comment: expected text"):
        svc.predict("notes", [{"x": 0.2, "comment": 3}])


def test_text_feed_is_the_normalised_string():
    feed = records_to_inputs(parse_spec(spec()), [{"x": 1, "comment": "Hello, World!"}])
    assert feed["comment"][0, 0] == "hello world" and feed["comment"].dtype == object


def test_text_and_boolean_drift_compare_words_per_text_and_the_true_rate(tmp_path):
    import io

    from mlops_kit.core.features import text_words
    from mlops_kit.core.monitoring.drift import feature_drift
    from mlops_kit.core.validation.validator import validate_dataset

    s = parse_spec({**spec(), "features": [*spec()["features"],
                                            {"name": "flag", "type": "boolean"}]})
    rng = np.random.default_rng(4)
    lines = ["x,comment,flag,y"] + [
        f'{rng.normal():.3f},"{" ".join(rng.choice(WORDS, rng.integers(1, 4)))}",'
        f'{"yes" if rng.random() < 0.3 else "no"},{i % 2}' for i in range(800)]
    profile = validate_dataset(io.BytesIO("\n".join(lines).encode()), "csv", s).profile
    assert profile["features"]["comment"]["type"] == "numeric"  # words per text
    assert profile["features"]["flag"]["type"] == "numeric"  # 1.0 / 0.0

    def captured(words, true_rate, n=600):
        return {"x": rng.normal(size=n).tolist(),
                "comment": [normalise_text(" ".join(rng.choice(WORDS, words)))
                            for _ in range(n)],
                "flag": (rng.random(n) < true_rate).astype(float).tolist()}

    same = captured(2, 0.3)
    same["comment"] = [normalise_text(" ".join(rng.choice(WORDS, k)))
                       for k in rng.integers(1, 4, 600)]
    quiet = feature_drift(profile, same, s)
    assert "comment" not in quiet["drifted_features"] and "flag" not in quiet["drifted_features"]
    hot = feature_drift(profile, captured(12, 0.9), s)
    assert {"comment", "flag"} <= set(hot["drifted_features"])
    assert np.isnan(text_words(["", None, "x"])).all()
