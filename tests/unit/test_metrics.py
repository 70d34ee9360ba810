"""The numpy metrics (used by the sklearn-free monitor) equal scikit-learn's, metric by metric."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from mlops_kit.core.metrics import compute_metrics


def sklearn_reference(task, y_true, y_pred, proba=None, classes=None):
    """What compute_metrics returned when it was written on top of scikit-learn."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if task == "regression":
        y_true, y_pred = y_true.astype(float), y_pred.astype(float)
        return {"rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
                "mae": float(skm.mean_absolute_error(y_true, y_pred)),
                "r2": float(skm.r2_score(y_true, y_pred))}
    out = {"accuracy": float(skm.accuracy_score(y_true, y_pred))}
    labels = list(classes) if classes is not None else sorted(set(y_true.tolist()))
    if task == "binary_classification" and len(labels) == 2:
        out["f1"] = float(skm.f1_score(y_true, y_pred, pos_label=labels[1], zero_division=0))
        out["precision"] = float(skm.precision_score(y_true, y_pred, pos_label=labels[1],
                                                     zero_division=0))
        out["recall"] = float(skm.recall_score(y_true, y_pred, pos_label=labels[1],
                                               zero_division=0))
    else:
        out["f1"] = float(skm.f1_score(y_true, y_pred, average="weighted", zero_division=0))
    out["f1_macro"] = float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    if proba is not None:
        p = np.clip(np.asarray(proba, dtype=float), 1e-15, 1)
        p = p / p.sum(axis=1, keepdims=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if p.shape[1] == 2:
                out["roc_auc"] = float(skm.roc_auc_score(y_true == labels[1], p[:, 1]))
            else:
                out["roc_auc"] = float(skm.roc_auc_score(y_true, p, multi_class="ovr",
                                                         average="weighted", labels=labels))
            out["log_loss"] = float(skm.log_loss(y_true, p, labels=labels))
    return out


def assert_same(ours, theirs):
    assert set(ours) == set(theirs)
    for k in theirs:
        if math.isnan(theirs[k]):
            assert math.isnan(ours[k]), k
        else:
            assert ours[k] == pytest.approx(theirs[k], rel=1e-9, abs=1e-12), k


@pytest.mark.parametrize("seed", range(5))
def test_binary_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 500
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1)
    p1 = np.round(p1, 2)  # ties in the scores: AUC must count them as halves
    proba = np.column_stack([1 - p1, p1])
    pred = (p1 > 0.5).astype(int)
    assert_same(compute_metrics("binary_classification", y, pred, proba, [0, 1]),
                sklearn_reference("binary_classification", y, pred, proba, [0, 1]))


def test_binary_string_labels_and_degenerate_predictions():
    y = np.array(["no", "yes", "yes", "no", "yes"])
    pred = np.array(["no"] * 5)  # never predicts the positive class: f1 = 0 (zero_division)
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.5, 0.5], [0.5, 0.5], [0.0, 1.0]])
    ours = compute_metrics("binary_classification", y, pred, proba, ["no", "yes"])
    assert ours["f1"] == 0.0
    assert_same(ours, sklearn_reference("binary_classification", y, pred, proba, ["no", "yes"]))


@pytest.mark.parametrize("seed", range(3))
def test_multiclass_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c", "d"]
    y = rng.choice(classes, 400, p=[0.4, 0.3, 0.2, 0.1])
    logits = rng.normal(size=(400, 4)) + 1.5 * (y[:, None] == np.array(classes))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = np.array(classes)[proba.argmax(axis=1)]
    assert_same(compute_metrics("multiclass_classification", y, pred, proba, classes),
                sklearn_reference("multiclass_classification", y, pred, proba, classes))


def test_multiclass_with_an_absent_class_matches_sklearn():
    y = np.array([0, 1, 1, 0, 1, 0])
    proba = np.array([[.2, .3, .5], [.3, .3, .4], [.5, .2, .3], [.1, .1, .8], [.1, .8, .1],
                      [.6, .2, .2]])
    pred = proba.argmax(axis=1)
    assert_same(compute_metrics("multiclass_classification", y, pred, proba, [0, 1, 2]),
                sklearn_reference("multiclass_classification", y, pred, proba, [0, 1, 2]))


@pytest.mark.parametrize("seed", range(3))
def test_regression_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(100, 15, 300)
    pred = y + rng.normal(0, 5, 300)
    assert_same(compute_metrics("regression", y, pred), sklearn_reference("regression", y, pred))


def test_regression_constant_target_like_sklearn():
    y = np.full(10, 3.0)
    for pred in (np.full(10, 3.0), np.arange(10.0)):
        assert_same(compute_metrics("regression", y, pred),
                    sklearn_reference("regression", y, pred))


def test_single_class_labels_give_no_auc_or_log_loss():
    out = compute_metrics("binary_classification", [1, 1, 1], [1, 0, 1],
                          [[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]], [0, 1])
    assert out == {"accuracy": pytest.approx(2 / 3), "f1": pytest.approx(0.8),
                   "f1_macro": pytest.approx(0.4), "precision": 1.0,
                   "recall": pytest.approx(2 / 3)}


def test_metrics_module_imports_no_sklearn():
    code = ("import sys, mlops_kit.core.metrics; "
            "print(sorted(m for m in ('sklearn', 'scipy', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
