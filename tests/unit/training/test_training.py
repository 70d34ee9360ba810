"""Training, ONNX export and the parity gate, for every estimator kind, on real (synthetic) data."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_kit.core import onnx_meta, synthetic
from mlops_kit.core.features import MISSING_CATEGORY, columns_to_inputs, records_to_inputs
from mlops_kit.core.spec import CLASSIFIERS, REGRESSORS, parse_spec
from mlops_kit.core.training import export
from mlops_kit.core.training import fit as training
from mlops_kit.errors import ExportError, SpecError, TrainingError, ValidationError

SMALL = {
    "logistic_regression": {},
    "random_forest": {"n_estimators": 25, "max_depth": 6},
    "gradient_boosting": {"n_estimators": 40, "max_depth": 3},
    "hist_gradient_boosting": {"max_iter": 40},
    "linear_regression": {},
    "ridge": {"alpha": 1.0},
    "random_forest_regressor": {"n_estimators": 25, "max_depth": 8},
    "gradient_boosting_regressor": {"n_estimators": 60, "max_depth": 3},
}
CHURN_CSV = synthetic.churn_csv(3000)


def churn_spec(kind: str, **overrides) -> object:
    return parse_spec(
        {**synthetic.CHURN_SPEC, "estimator": {"kind": kind, "params": SMALL[kind]}, **overrides}
    )


def plan_spec(kind: str):
    """Multiclass with string labels: predict the plan from the rest (churned as a feature)."""
    features = [f for f in synthetic.CHURN_SPEC["features"] if f["name"] != "plan"]
    features.append({"name": "churned", "type": "numeric"})
    return parse_spec(
        {
            **synthetic.CHURN_SPEC,
            "name": "plan",
            "task": "multiclass_classification",
            "target": "plan",
            "features": features,
            "estimator": {"kind": kind, "params": SMALL[kind]},
            "promotion": {"metric": "f1"},
        }
    )


REGRESSION_SPEC = {
    "name": "price",
    "task": "regression",
    "target": "price",
    "features": [
        {"name": "size", "type": "numeric", "min": 0},
        {"name": "rooms", "type": "numeric", "min": 0},
        {"name": "city", "type": "categorical"},
    ],
    "promotion": {"metric": "rmse"},
}


def regression_csv(n: int = 1200, seed: int = 3) -> bytes:
    """price = 3*size + 20*rooms + city effect + noise, with some missing values."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(20, 200, n).round(1)
    rooms = rng.integers(1, 7, n)
    city = rng.choice(["oslo", "bergen", "tromso"], n)
    effect = np.select([city == "oslo", city == "bergen"], [150.0, 60.0], 0.0)
    price = 3 * size + 20 * rooms + effect + rng.normal(0, 15, n)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["size", "rooms", "city", "price"])
    for i in range(n):
        w.writerow(
            [
                "" if i % 37 == 0 else size[i],
                rooms[i],
                "" if i % 41 == 0 else city[i],
                round(price[i], 2),
            ]
        )
    return buf.getvalue().encode()


def regression_spec(kind: str):
    return parse_spec({**REGRESSION_SPEC, "estimator": {"kind": kind, "params": SMALL[kind]}})


def fit(spec, raw: bytes = CHURN_CSV):
    df = training.read_frame(io.BytesIO(raw), "csv", spec)
    return training.train(spec, df)


def session(onnx_bytes: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])


# -- reading -----------------------------------------------------------------------------------
def test_read_frame_types_and_float32_rounding():
    spec = churn_spec("logistic_regression")
    df = training.read_frame(io.BytesIO(synthetic.churn_csv(400)), "csv", spec)
    assert list(df.columns) == [*spec.feature_names, "churned"]  # customer_id dropped
    assert df["churned"].dtype == np.int64 and set(df["churned"]) == {0, 1}
    for f in spec.numeric:
        col = df[f.name].to_numpy()
        assert col.dtype == np.float64
        finite = col[~np.isnan(col)]
        np.testing.assert_array_equal(finite, finite.astype(np.float32).astype(np.float64))
    assert df["support_calls"].isna().sum() > 0  # nulls stay NaN for the imputer
    assert (df["payment"] == MISSING_CATEGORY).sum() > 0  # categorical nulls -> own category
    assert df["payment"].map(type).eq(str).all()


def test_read_frame_parquet_matches_csv():
    spec = plan_spec("logistic_regression")
    cols = synthetic.churn_columns(300)
    buf = io.BytesIO()
    pq.write_table(pa.table(cols), buf)
    buf.seek(0)
    from_parquet = training.read_frame(buf, "parquet", spec)
    from_csv = training.read_frame(io.BytesIO(synthetic.churn_csv(300)), "csv", spec)
    pd.testing.assert_frame_equal(from_parquet, from_csv)
    assert from_csv["plan"].map(type).eq(str).all()  # string class labels stay strings


def test_read_frame_errors_name_the_column():
    spec = churn_spec("logistic_regression")
    with pytest.raises(ValidationError) as missing:
        training.read_frame(io.BytesIO(b"tenure_months,churned\n1,0\n"), "csv", spec)
    assert missing.value.field == "monthly_charges"
    with pytest.raises(ValidationError) as bad:
        training.read_frame(io.BytesIO(synthetic.broken_churn_csv()), "csv", spec)
    assert "monthly_charges" in bad.value.message and "'lots'" in bad.value.message
    text = synthetic.churn_csv(50).decode().splitlines()
    text[5] = text[5].rsplit(",", 1)[0] + ","  # blank target
    with pytest.raises(ValidationError, match="target 'churned' is missing on 1 rows"):
        training.read_frame(io.BytesIO("\n".join(text).encode()), "csv", spec)


# -- every estimator kind: train, export, parity ---------------------------------------------
@pytest.mark.parametrize("kind", sorted(CLASSIFIERS))
def test_binary_classifiers_train_export_and_pass_parity(kind):
    spec = churn_spec(kind)
    result = fit(spec)
    assert result.rows_train + result.rows_holdout == 3000
    assert result.rows_holdout == 600
    assert result.classes == [0, 1] and all(type(c) is int for c in result.classes)
    m = result.metrics
    assert set(m) == {"accuracy", "f1", "f1_macro", "precision", "recall", "roc_auc", "log_loss"}
    assert m["roc_auc"] > 0.7, m
    assert 0.6 < m["accuracy"] <= 1.0 and 0.0 < m["f1"] <= 1.0 and 0 < m["log_loss"] < 0.69
    assert result.params["random_state"] == 42  # spec.seed
    for key, value in SMALL[kind].items():
        assert result.params[key] == value

    onnx_bytes = export.to_onnx(spec, result.pipeline)
    model = onnx.load_from_string(onnx_bytes)
    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets[""] <= export.TARGET_OPSET and opsets.get("ai.onnx.ml", 0) <= export.ML_OPSET
    sess = session(onnx_bytes)
    inputs = {i.name: (i.type, i.shape) for i in sess.get_inputs()}
    assert list(inputs) == spec.feature_names
    assert inputs["age"] == ("tensor(float)", [None, 1])
    assert inputs["plan"] == ("tensor(string)", [None, 1])
    assert onnx_meta.output_names(sess) == ("label", "probabilities")
    assert onnx_meta.classes(sess) == [0, 1]

    parity = export.parity_check(spec, result.pipeline, onnx_bytes, result.X_holdout)
    assert parity.passed, parity.reason
    assert parity.rows == 600 and parity.label_agreement == 1.0
    assert parity.max_abs_diff < 1e-5 and parity.tolerance == 1e-4
    assert parity.to_dict()["outputs"] == ["label", "probabilities"]
    onnx_labels = sess.run(["label"], columns_to_inputs(spec, result.X_holdout.to_dict("list")))[0]
    assert onnx_labels.tolist() == result.holdout_predictions


@pytest.mark.parametrize("kind", sorted(CLASSIFIERS))
def test_multiclass_with_string_labels(kind):
    spec = plan_spec(kind)
    result = fit(spec, synthetic.churn_csv(1200))
    assert result.classes == ["basic", "premium", "standard"]
    assert set(result.holdout_predictions) <= set(result.classes)
    assert 0.5 < result.metrics["roc_auc"] < 1.0  # weak but real signal (plan -> charges)
    onnx_bytes = export.to_onnx(spec, result.pipeline)
    sess = session(onnx_bytes)
    outputs = {o.name: o.type for o in sess.get_outputs()}
    assert outputs == {"label": "tensor(string)", "probabilities": "tensor(float)"}
    assert onnx_meta.classes(sess) == result.classes
    parity = export.parity_check(spec, result.pipeline, onnx_bytes, result.X_holdout)
    assert parity.passed, parity.reason
    proba = sess.run(["probabilities"], columns_to_inputs(spec, result.X_holdout.to_dict("list")))[
        0
    ]
    assert proba.shape == (result.rows_holdout, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(REGRESSORS))
def test_regressors_train_export_and_pass_parity(kind):
    spec = regression_spec(kind)
    result = fit(spec, regression_csv())
    assert result.classes is None
    m = result.metrics
    assert set(m) == {"rmse", "mae", "r2"}
    assert m["r2"] > 0.9, m
    assert 0 < m["mae"] <= m["rmse"] < 40, m
    onnx_bytes = export.to_onnx(spec, result.pipeline)
    sess = session(onnx_bytes)
    assert onnx_meta.output_names(sess) == ("variable", None)
    assert sess.get_outputs()[0].type == "tensor(float)"
    assert onnx_meta.classes(sess) is None
    parity = export.parity_check(spec, result.pipeline, onnx_bytes, result.X_holdout)
    assert parity.passed, parity.reason
    assert parity.label_agreement == 1.0 and parity.rows == result.rows_holdout


def test_regression_on_churn_monthly_charges():
    features = [f for f in synthetic.CHURN_SPEC["features"] if f["name"] != "monthly_charges"]
    spec = parse_spec(
        {
            **synthetic.CHURN_SPEC,
            "task": "regression",
            "target": "monthly_charges",
            "features": [*features, {"name": "churned", "type": "numeric"}],
            "estimator": {"kind": "gradient_boosting_regressor", "params": {"n_estimators": 30}},
            "promotion": {"metric": "rmse"},
        }
    )
    result = fit(spec)
    assert result.y_holdout.dtype == np.float64
    assert 5 < result.metrics["rmse"] < 30  # charges ~ N(70, 25); churn explains a little
    onnx_bytes = export.to_onnx(spec, result.pipeline)
    assert export.parity_check(spec, result.pipeline, onnx_bytes, result.X_holdout).passed


# -- determinism, inference edge cases, failing gates -----------------------------------------
@pytest.mark.parametrize("kind", ["random_forest", "hist_gradient_boosting"])
def test_training_is_deterministic(kind):
    spec = churn_spec(kind)
    a, b = fit(spec), fit(spec)
    assert a.metrics == b.metrics
    assert a.holdout_predictions == b.holdout_predictions
    pd.testing.assert_frame_equal(a.X_holdout, b.X_holdout)
    feed = columns_to_inputs(spec, a.X_holdout.to_dict("list"))
    pa_, pb_ = (session(export.to_onnx(spec, r.pipeline)).run(None, feed) for r in (a, b))
    np.testing.assert_array_equal(pa_[0], pb_[0])
    np.testing.assert_array_equal(pa_[1], pb_[1])
    other = fit(churn_spec(kind, seed=7))
    assert other.metrics != a.metrics  # the seed really is used


@pytest.mark.parametrize("kind", ["logistic_regression", "gradient_boosting"])
def test_missing_values_and_unknown_categories_at_inference(kind):
    # No category list in the spec, so serving lets an unseen region through to the model;
    # every feature nullable (requests are strict by default), so all-missing rows are served.
    features = [
        {**f, "categories": None, "nullable": True} if f["type"] == "categorical"
        else {**f, "nullable": True}
        for f in synthetic.CHURN_SPEC["features"]
    ]
    spec = churn_spec(kind, features=features)
    result = fit(spec)
    records = [
        {
            "tenure_months": 3,
            "monthly_charges": 99.5,
            "support_calls": None,
            "age": 30,
            "plan": "basic",
            "region": "atlantis",
            "payment": None,
        },
        {
            "tenure_months": None,
            "monthly_charges": None,
            "support_calls": None,
            "age": None,
            "plan": None,
            "region": None,
            "payment": None,
        },
        {
            "tenure_months": 60,
            "monthly_charges": 40.0,
            "support_calls": 0,
            "age": 50,
            "plan": "gold",
            "region": "north",
            "payment": "crypto",
        },
    ]
    feed = records_to_inputs(spec, records)
    assert np.isnan(feed["support_calls"][0, 0]) and feed["payment"][0, 0] == MISSING_CATEGORY
    label, proba = session(export.to_onnx(spec, result.pipeline)).run(
        ["label", "probabilities"], feed
    )
    assert np.all(np.isfinite(proba)) and proba.shape == (3, 2)
    # sklearn on the same encoding gives the same answers
    frame = pd.DataFrame({k: v.reshape(-1).tolist() for k, v in feed.items()})
    frame[[f.name for f in spec.numeric]] = frame[[f.name for f in spec.numeric]].astype(np.float64)
    np.testing.assert_allclose(proba, result.pipeline.predict_proba(frame), atol=1e-5)
    assert label.tolist() == result.pipeline.predict(frame).tolist()


def test_parity_fails_with_reason_when_probabilities_disagree():
    spec = churn_spec("gradient_boosting")
    result = fit(spec)
    other = fit(churn_spec("random_forest"))  # a different model's graph
    wrong_bytes = export.to_onnx(spec, other.pipeline)
    parity = export.parity_check(spec, result.pipeline, wrong_bytes, result.X_holdout)
    assert not parity.passed
    assert "probabilities differ by" in parity.reason and "> 0.0001 on" in parity.reason
    assert parity.max_abs_diff > 0.01 and parity.to_dict()["passed"] is False
    assert parity.label_agreement < 0.99 and "labels differ on" in parity.reason
    assert "sklearn 1, onnx 0" in parity.reason or "sklearn 0, onnx 1" in parity.reason


class FixedClassifier:
    """A fake fitted model with chosen outputs, to pin the gate's near-tie rule exactly."""

    def __init__(self, labels, proba):
        self.labels, self.proba = np.asarray(labels), np.asarray(proba, dtype=np.float64)

    def predict(self, X):
        return self.labels

    def predict_proba(self, X):
        return self.proba


def test_parity_excuses_label_flips_only_on_near_ties():
    onnx_labels = np.asarray([1, 0, 1])
    onnx_proba = np.asarray([[0.49999, 0.50001], [0.9, 0.1], [0.6, 0.4]])
    # row 0: sklearn says 0 by a margin of 2e-5 < tol -> excused; row 2 disagrees for real
    sk = FixedClassifier([0, 0, 0], [[0.50001, 0.49999], [0.9, 0.1], [0.6, 0.4]])
    result = export._classification_parity(sk.labels, sk.proba, onnx_labels, onnx_proba, 1e-4)
    assert not result.passed and result.near_ties == 1
    assert result.reason.startswith("labels differ on 1 of 3 rows (first row 2: sklearn 0, onnx 1)")
    sk_ok = FixedClassifier([0, 0, 1], [[0.50001, 0.49999], [0.9, 0.1], [0.4, 0.6]])
    fixed = np.asarray([[0.49999, 0.50001], [0.9, 0.1], [0.4, 0.6]])
    ok = export._classification_parity(sk_ok.labels, sk_ok.proba, onnx_labels, fixed, 1e-4)
    assert ok.passed and ok.reason is None and ok.near_ties == 1
    assert ok.label_agreement == pytest.approx(2 / 3) and ok.max_abs_diff == pytest.approx(2e-5)
    # the real logistic graph is exact to ~1e-7: a 1e-12 tolerance must fail on probabilities
    spec = churn_spec("logistic_regression")
    trained = fit(spec, synthetic.churn_csv(500))
    onnx_bytes = export.to_onnx(spec, trained.pipeline)
    strict = export.parity_check(spec, trained.pipeline, onnx_bytes, trained.X_holdout, 1e-12)
    assert not strict.passed and "probabilities differ by" in strict.reason


def test_regression_parity_fails_against_another_model():
    spec = regression_spec("ridge")
    result = fit(spec, regression_csv())
    other = fit(regression_spec("random_forest_regressor"), regression_csv())
    parity = export.parity_check(
        spec, result.pipeline, export.to_onnx(spec, other.pipeline), result.X_holdout
    )
    assert not parity.passed and "predictions differ by" in parity.reason


@pytest.mark.parametrize(
    ("kind", "params", "name"),
    [
        ("random_forest", {"n_trees": 10}, "n_trees"),
        ("random_forest", {"n_estimators": -3}, "n_estimators"),
        ("logistic_regression", {"C": "strong"}, "C"),
        ("ridge", {"alpha": -1.0}, "alpha"),
    ],
)
def test_bad_estimator_params_name_the_param(kind, params, name):
    spec = parse_spec(
        {
            **(REGRESSION_SPEC if kind in REGRESSORS else synthetic.CHURN_SPEC),
            "estimator": {"kind": kind, "params": params},
        }
    )
    raw = regression_csv(200) if kind in REGRESSORS else synthetic.churn_csv(200)
    with pytest.raises(SpecError) as err:  # a spec error: final, and caught at `spec check`
        fit(spec, raw)
    assert f"estimator.params.{name}:" in err.value.message
    assert err.value.field == f"estimator.params.{name}"
    assert err.value.message.count("\n") == 0


def test_training_errors_are_clear():
    spec = churn_spec("logistic_regression")
    df = training.read_frame(io.BytesIO(synthetic.churn_csv(200)), "csv", spec)
    with pytest.raises(TrainingError, match="single class"):
        training.train(spec, df.assign(churned=0))
    with pytest.raises(TrainingError, match="'age' is missing"):
        training.train(spec, df.drop(columns=["age"]))


def test_export_of_unfitted_pipeline_is_an_export_error():
    spec = churn_spec("random_forest")
    with pytest.raises(
        ExportError, match="cannot convert random_forest to ONNX: the pipeline is not fitted"
    ):
        export.to_onnx(spec, training.build_pipeline(spec))


def test_parity_result_is_json_ready():
    import json

    spec = regression_spec("linear_regression")
    result = fit(spec, regression_csv(300))
    parity = export.parity_check(
        spec, result.pipeline, export.to_onnx(spec, result.pipeline), result.X_holdout
    )
    doc = json.loads(json.dumps(parity.to_dict()))
    assert doc["passed"] is True and doc["outputs"] == ["variable", None]
    assert doc["max_abs_diff"] < 1e-3 and not math.isnan(doc["mean_abs_diff"])
    assert json.loads(json.dumps(result.params))["fit_intercept"] is True


def test_parity_fails_cleanly_on_a_broken_graph():
    spec = regression_spec("ridge")
    result = fit(spec, regression_csv(300))
    parity = export.parity_check(spec, result.pipeline, b"not onnx", result.X_holdout)
    assert not parity.passed and parity.reason.startswith("onnxruntime could not run the model")


class FakeOutput:
    def __init__(self, name, type_, shape):
        self.name, self.type, self.shape = name, type_, shape


class FakeSession:
    def __init__(self, *outputs):
        self.outputs = list(outputs)

    def get_outputs(self):
        return self.outputs


def test_output_names_without_conventional_names():
    two = FakeSession(
        FakeOutput("output_label", "tensor(string)", [None]),
        FakeOutput("output_probability", "tensor(float)", [None, 3]),
    )
    assert onnx_meta.output_names(two) == ("output_label", "output_probability")
    one = FakeSession(FakeOutput("y", "tensor(float)", [None, 1]))
    assert onnx_meta.output_names(one) == ("y", None)
    with pytest.raises(ValueError, match="no outputs"):
        onnx_meta.output_names(FakeSession())
