"""Issue 28, cold start: export writes onnxruntime's saved optimised graph (model.ort, ORT
format) beside model.onnx, the parity gate checks it against the ONNX graph's outputs, the
registry records its sha256, and serving loads it (graph optimisations off) when present,
falling back to model.onnx for versions without it or a runtime that cannot load it."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest

from mlops_kit.core import layout, onnx_meta, synthetic
from mlops_kit.core.features import columns_to_inputs
from mlops_kit.core.serving.loader import open_session
from mlops_kit.core.serving.predictor import Predictor
from mlops_kit.core.spec import parse_spec
from mlops_kit.core.training import export
from mlops_kit.core.training import fit as training
from mlops_kit.errors import IntegrityError
from tests.support import feature_records

CSV = synthetic.churn_csv(1200, seed=5)


def _fit(spec):
    with io.BytesIO(CSV) as f:
        return training.train(spec, training.read_frame(f, "csv", spec))


def _spec(kind: str, params: dict, **over):
    return parse_spec({**synthetic.CHURN_SPEC, "estimator": {"kind": kind, "params": params},
                       **over})


@pytest.fixture(scope="module", params=["random_forest", "linear_regression"])
def exported(request):
    if request.param == "random_forest":
        spec = _spec("random_forest", {"n_estimators": 10, "max_depth": 6})
    else:  # a regressor: values compared with the relative tolerance
        spec = _spec("linear_regression", {}, task="regression", target="monthly_charges",
                     features=[f for f in synthetic.CHURN_SPEC["features"]
                               if f["name"] != "monthly_charges"],
                     promotion={"metric": "rmse"})
    result = _fit(spec)
    onnx_bytes = export.to_onnx(spec, result.pipeline)
    return spec, result, onnx_bytes


def test_parity_gate_saves_and_checks_the_optimized_graph(exported):
    spec, result, onnx_bytes = exported
    parity = export.parity_check(spec, result.pipeline, onnx_bytes, result.X_holdout,
                                 optimize=True)
    assert parity.passed, parity.reason
    assert parity.optimized is not None and parity.optimized["passed"], parity.optimized
    ort_bytes = parity.optimized_model
    assert ort_bytes is not None and ort_bytes != onnx_bytes
    assert parity.optimized["bytes"] == len(ort_bytes)
    assert "optimized_model" not in parity.to_dict()  # bytes never reach the registry record
    assert parity.to_dict()["optimized"]["passed"] is True
    # the ORT format loads with optimisations off and answers exactly as the ONNX graph
    feed = columns_to_inputs(spec, result.X_holdout.to_dict("list"))
    plain = onnx_meta.session(__import__("onnxruntime"), onnx_bytes)
    fast = onnx_meta.session(__import__("onnxruntime"), ort_bytes, optimized=True)
    names = [o.name for o in plain.get_outputs()]
    for a, b in zip(plain.run(names, feed), fast.run(names, feed), strict=True):
        np.testing.assert_array_equal(a, b)
    assert onnx_meta.input_map(fast) == onnx_meta.input_map(plain)  # metadata survives
    assert onnx_meta.classes(fast) == onnx_meta.classes(plain)


def test_without_optimize_the_gate_makes_nothing(exported):
    spec, result, onnx_bytes = exported
    parity = export.parity_check(spec, result.pipeline, onnx_bytes, result.X_holdout)
    assert parity.passed and parity.optimized is None and parity.optimized_model is None


def test_an_optimized_graph_that_answers_differently_is_not_shipped():
    spec = _spec("random_forest", {"n_estimators": 10, "max_depth": 6})
    result = _fit(spec)
    onnx_bytes = export.to_onnx(spec, result.pipeline)
    other = _fit(_spec("random_forest", {"n_estimators": 3, "max_depth": 2}))
    other_onnx = export.to_onnx(spec, other.pipeline)
    wrong = export.parity_check(spec, other.pipeline, other_onnx, other.X_holdout,
                                optimize=True).optimized_model
    assert wrong is not None
    values, proba, _ = export.run_onnx(spec, onnx_bytes, result.X_holdout, 1)
    check, shipped = export._optimized_check(spec, wrong, result.X_holdout, (values, proba),
                                             1e-4)
    assert shipped is None and check["passed"] is False and check["max_abs_diff"] > 1e-4
    check, shipped = export._optimized_check(spec, b"not a model", result.X_holdout,
                                             (values, proba), 1e-4)
    assert shipped is None and "could not run" in check["reason"]


def test_training_writes_model_ort_and_serving_prefers_it(trained, monkeypatch):
    b = trained
    record = b.ctx.registry.get_version("churn", 1)
    ort_key = layout.artifact_key("churn", 1, layout.OPTIMIZED_MODEL_FILE)
    ort_bytes = b.ctx.store.get(ort_key)
    assert record["ort_sha256"] == hashlib.sha256(ort_bytes).hexdigest()
    assert record["sha256"] != record["ort_sha256"]
    assert record["parity"]["optimized"]["passed"] is True
    service = b.service()
    optimized = service.load_version("churn", 1)
    assert optimized.optimized is True
    records = feature_records(20, seed=11)
    onnx_bytes = b.ctx.store.get(layout.artifact_key("churn", 1))
    want = Predictor(open_session(onnx_bytes, model="churn", version=1, sha256=record["sha256"]),
                     optimized.spec, version=1, classes=record["classes"]).predict(records)
    assert optimized.predict(records) == want

    def with_ort_sha(sha):  # what the version record would say
        monkeypatch.setattr(b.ctx.registry, "get_version",
                            lambda model, version: {**record, "ort_sha256": sha})

    # a version exported before model.ort existed: its record has no ort_sha256
    with_ort_sha(None)
    assert service.load_version("churn", 1).optimized is False
    # recorded but missing from the store: model.onnx
    with_ort_sha(record["ort_sha256"])
    b.ctx.store.delete(ort_key)
    assert service.load_version("churn", 1).optimized is False
    # intact, but this onnxruntime cannot load it: model.onnx too
    b.ctx.store.put(ort_key, b"ORT?")
    with_ort_sha(hashlib.sha256(b"ORT?").hexdigest())
    assert service.load_version("churn", 1).optimized is False
    # tampered: an integrity error, as a tampered model.onnx is
    with_ort_sha("0" * 64)
    with pytest.raises(IntegrityError, match="sha256"):
        service.load_version("churn", 1)
