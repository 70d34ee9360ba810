"""tree_v5: the served graph's tree ensemble in ai.onnx.ml opset-5 form (issue 28, cold start:
onnxruntime builds it in ~70 ms instead of ~95 ms for the 100-tree benchmark forest). The
rewrite must answer bit for bit as skl2onnx's graph does, ties included, or not happen.
Operator: https://onnx.ai/onnx/operators/onnx_aionnxml_TreeEnsemble.html"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from skl2onnx import to_onnx
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeClassifier

from mlops_kit.core.training import tree_v5

RNG = np.random.RandomState(3)
X = RNG.rand(600, 5).astype(np.float32)
NOISY = (X[:, 0] + 0.8 * RNG.rand(600) > 0.9).astype(np.int64)  # pure leaves: ties at 0.5
TEST = np.r_[RNG.rand(3000, 5).astype(np.float32), X]


def _convert(model, **options):
    return to_onnx(model, X[:1], target_opset={"": 17, "ai.onnx.ml": 3},
                   options={id(model): {"zipmap": False, **options}}
                   if hasattr(model, "classes_") else None).SerializeToString()


def _run(model_bytes: bytes):
    s = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: TEST})


def _ops(model_bytes: bytes) -> set[tuple[str, str]]:
    return {(n.domain, n.op_type) for n in onnx.load_from_string(model_bytes).graph.node}


@pytest.mark.parametrize("model", [
    RandomForestClassifier(n_estimators=10, random_state=0).fit(X, NOISY),
    RandomForestClassifier(n_estimators=7, max_depth=5, random_state=1).fit(
        X, np.where(NOISY == 1, "churn", "stay")),
    DecisionTreeClassifier(max_depth=6, random_state=0).fit(X, NOISY),
    RandomForestRegressor(n_estimators=8, max_depth=8, random_state=0).fit(X, X @ [1, 2, 0, 0, 3]),
    ExtraTreesRegressor(n_estimators=5, random_state=0).fit(X, X[:, 1] * 3),
], ids=["forest-binary", "forest-string-labels", "tree", "forest-regressor", "extra-trees"])
def test_rewritten_graph_answers_bit_for_bit(model):
    v3 = _convert(model)
    v5 = tree_v5.rewrite(v3)
    assert v5 is not None
    assert ("ai.onnx.ml", "TreeEnsemble") in _ops(v5)
    assert not {op for _, op in _ops(v5)} & {"TreeEnsembleClassifier", "TreeEnsembleRegressor"}
    want, got = _run(v3), _run(v5)
    for a, b in zip(want, got, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    if len(want) == 2 and len(model.classes_) == 2 and getattr(model, "n_estimators", 0) == 10:
        assert (want[1][:, 1] == 0.5).any()  # the tie rule was exercised: 0.5 -> first class


@pytest.mark.parametrize("model", [
    RandomForestClassifier(n_estimators=4, random_state=0).fit(X, (X[:, 0] * 3).astype(int)),
    GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X, NOISY),
], ids=["multiclass-weight-per-class", "boosting-logistic-base-values"])
def test_what_it_cannot_say_exactly_is_left_alone(model):
    assert tree_v5.rewrite(_convert(model)) is None


def test_no_tree_no_rewrite():
    from sklearn.linear_model import LogisticRegression

    assert tree_v5.rewrite(_convert(LogisticRegression().fit(X, NOISY))) is None
