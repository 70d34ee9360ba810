"""The vectorised tree attributes are skl2onnx's, value for value: the same lists per tree for
every tree ensemble the kit trains, and byte-identical ONNX graphs end to end."""

from __future__ import annotations

import numpy as np
import pytest
from skl2onnx.common.tree_ensemble import (
    add_tree_to_attribute_pairs as original,
)
from skl2onnx.common.tree_ensemble import (
    get_default_tree_classifier_attribute_pairs,
    get_default_tree_regressor_attribute_pairs,
)
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

from mlops_kit.core.spec import parse_spec
from mlops_kit.core.synthetic import CHURN_SPEC, churn_csv
from mlops_kit.core.training.export import to_onnx
from mlops_kit.core.training.fit import read_frame, train
from mlops_kit.core.training.tree_attrs import add_tree_to_attribute_pairs, fast_tree_attributes

rng = np.random.default_rng(0)
X = rng.normal(size=(600, 5)).astype(np.float32)
X[:, 3] = np.round(X[:, 3] * 3)  # ties and integer-valued splits
y2 = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
y4 = np.digitize(X[:, 0] + 0.5 * X[:, 4], [-1, 0, 1])
yr = X[:, 0] * 3 + np.sin(X[:, 1])


def trees(model):
    est = np.ravel(getattr(model, "estimators_", [model]))
    return [e.tree_ for e in est]


@pytest.mark.parametrize(("model", "y", "classifier", "counts", "adjust"), [
    (RandomForestClassifier(n_estimators=5, random_state=0), y2, True, True, True),
    (RandomForestClassifier(n_estimators=5, random_state=0), y4, True, True, True),
    (ExtraTreesClassifier(n_estimators=5, random_state=0), y4, True, True, True),
    (RandomForestRegressor(n_estimators=5, random_state=0), yr, False, False, True),
    (GradientBoostingClassifier(n_estimators=5, random_state=0), y2, False, False, True),
    (GradientBoostingRegressor(n_estimators=5, random_state=0), yr, False, False, False),
])
def test_same_attributes_as_skl2onnx(model, y, classifier, counts, adjust):
    model.fit(X, y)
    for i, tree in enumerate(trees(model)):
        expected = get_default_tree_classifier_attribute_pairs() if classifier else \
            get_default_tree_regressor_attribute_pairs()
        got = {k: (list(v) if isinstance(v, list) else v) for k, v in expected.items()}
        args = (classifier, tree, i, 0.2, i % 3, counts, adjust)
        original(expected, *args, dtype=np.float32)
        add_tree_to_attribute_pairs(got, *args, dtype=np.float32)
        assert got.keys() == expected.keys()
        for k in expected:
            assert got[k] == [x.item() if isinstance(x, np.generic) else x
                              for x in expected[k]] if isinstance(expected[k], list) \
                else got[k] == expected[k], k


@pytest.mark.parametrize("kind", ["random_forest", "gradient_boosting"])
def test_same_onnx_bytes_end_to_end(kind):
    import io

    spec = parse_spec({**CHURN_SPEC, "estimator": {"kind": kind, "params": {
        "n_estimators": 8, "random_state": 1}}})
    result = train(spec, read_frame(io.BytesIO(churn_csv(800, seed=3)), "csv", spec))
    with fast_tree_attributes():
        fast = to_onnx(spec, result.pipeline, fast_trees=False)
    slow = to_onnx(spec, result.pipeline, fast_trees=False)
    assert fast == slow
    if kind == "gradient_boosting":  # the default path for ensembles other than forests
        assert to_onnx(spec, result.pipeline) == slow


@pytest.mark.parametrize("kind", ["random_forest", "random_forest_regressor"])
def test_forest_filled_in_place_predicts_exactly_like_skl2onnx(kind):
    import io

    import onnxruntime as ort

    from mlops_kit.core.features import columns_to_inputs
    from mlops_kit.core.training import forest_export

    task = "binary_classification" if kind == "random_forest" else "regression"
    base = {**CHURN_SPEC, "task": task, "estimator": {"kind": kind, "params": {
        "n_estimators": 12, "random_state": 2}}}
    if task == "regression":
        base = {**base, "target": "monthly_charges", "promotion": {"metric": "rmse"},
                "features": [f for f in CHURN_SPEC["features"] if f["name"] != "monthly_charges"]}
    spec = parse_spec(base)
    result = train(spec, read_frame(io.BytesIO(churn_csv(1500, seed=4)), "csv", spec))
    assert forest_export.applies(result.pipeline)
    fast, slow = to_onnx(spec, result.pipeline), to_onnx(spec, result.pipeline, fast_trees=False)
    assert fast != slow  # a different path (attribute order), ...
    X = result.X_holdout
    feed = columns_to_inputs(spec, {c: X[c].tolist() for c in spec.feature_names})
    outs = [ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, feed)
            for m in (fast, slow)]
    for a, b in zip(*outs, strict=True):  # ... the same answers, bit for bit
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_numpy_encoded_attributes_parse_to_the_protobuf_api_values():
    import onnx

    from mlops_kit.core.training.forest_export import encode_attribute

    cases = {"nodes_featureids": np.array([0, 1, 127, 128, 300, 2**31 - 1, 2**40, 5]),
             "nodes_values": np.array([0.0, -1.5, 3.4e38, 1e-45, np.inf], dtype=np.float32),
             "nodes_modes": np.array([False, True, True, False]),
             "class_ids": np.array([], dtype=np.int64)}
    for name, values in cases.items():
        parsed = onnx.AttributeProto()
        parsed.MergeFromString(encode_attribute(name, values))
        plain = [("BRANCH_LEQ", "LEAF")[v] for v in values.tolist()] \
            if name == "nodes_modes" else values.tolist()
        expected = onnx.helper.make_attribute(name, plain, attr_type={
            "nodes_values": onnx.AttributeProto.FLOATS,
            "nodes_modes": onnx.AttributeProto.STRINGS}.get(name, onnx.AttributeProto.INTS))
        assert parsed == expected, name
    with pytest.raises(ValueError):
        encode_attribute("nodes_featureids", np.array([-1]))
