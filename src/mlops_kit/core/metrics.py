"""Model metrics, the same at training, at promotion (champion re-scored on the candidate's
holdout) and in live monitoring from late labels.

numpy only: the monitor function ships without scikit-learn, and live metrics must carry the
same names and values as the training ones. tests/unit/test_metrics.py checks every metric
against scikit-learn (accuracy, binary / weighted F1 with zero_division=0, ROC AUC (binary, and
one-vs-rest weighted for multiclass), log loss; RMSE, MAE, R2).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["accuracy", "compute_metrics", "f1_binary", "f1_macro", "f1_weighted", "label_key",
           "log_loss", "mae", "positive_label", "precision_recall", "r2", "rmse",
           "roc_auc_binary", "roc_auc_ovr_weighted", "unambiguous_binary"]


# -- regression ---------------------------------------------------------------------------
def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.abs(y_true - y_pred)))


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination; a constant target gives 1.0 (perfect) or 0.0, as sklearn."""
    ss_res = float(np.sum((y_true - y_pred) ** 2))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot


# -- classification -----------------------------------------------------------------------
def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred)) if y_true.size else 0.0


def _f1(y_true: np.ndarray, y_pred: np.ndarray, label: Any) -> float:
    t, p = y_true == label, y_pred == label
    tp = int(np.sum(t & p))
    denom = 2 * tp + int(np.sum(~t & p)) + int(np.sum(t & ~p))
    return 2 * tp / denom if denom else 0.0  # zero_division=0


def f1_binary(y_true: np.ndarray, y_pred: np.ndarray, pos_label: Any) -> float:
    return float(_f1(y_true, y_pred, pos_label))


def precision_recall(y_true: np.ndarray, y_pred: np.ndarray, pos_label: Any) -> tuple[float, float]:
    """Precision and recall of one class (zero_division=0, as scikit-learn's default warns)."""
    t, p = y_true == pos_label, y_pred == pos_label
    tp = int(np.sum(t & p))
    predicted, actual = int(np.sum(p)), int(np.sum(t))
    return (tp / predicted if predicted else 0.0), (tp / actual if actual else 0.0)


def f1_weighted(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    labels = np.unique(np.concatenate([y_true, y_pred]))
    support = np.array([np.sum(y_true == lab) for lab in labels], dtype=np.float64)
    if support.sum() == 0:
        return 0.0
    scores = np.array([_f1(y_true, y_pred, lab) for lab in labels])
    return float(np.average(scores, weights=support))


def f1_macro(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The unweighted mean of per-class F1 (every class counts the same, rare ones too)."""
    labels = np.unique(np.concatenate([y_true, y_pred]))
    return float(np.mean([_f1(y_true, y_pred, lab) for lab in labels])) if labels.size else 0.0


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties get the mean of their ranks (what makes AUC count ties as 1/2)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    boundaries = np.flatnonzero(np.diff(xs)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [xs.size]])
    mean_rank = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(xs.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc_binary(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney U / (n_pos * n_neg): equals the area under the ROC curve. NaN if one class."""
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(score, dtype=np.float64))
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_auc_ovr_weighted(y_true: np.ndarray, proba: np.ndarray, labels: Sequence) -> float:
    labels = list(labels)
    if proba.shape[1] != len(labels):
        raise ValueError(f"{proba.shape[1]} probability columns for {len(labels)} labels")
    unknown = set(np.unique(y_true).tolist()) - set(labels)
    if unknown:
        raise ValueError(f"y_true contains labels not in labels: {sorted(map(str, unknown))}")
    weights = np.array([np.sum(y_true == lab) for lab in labels], dtype=np.float64)
    if weights.sum() == 0:
        return 0.0
    scores = np.array([roc_auc_binary(y_true == lab, proba[:, i]) if weights[i] else 0.0
                       for i, lab in enumerate(labels)])
    return float(np.average(scores, weights=weights))


def log_loss(y_true: np.ndarray, proba: np.ndarray, labels: Sequence) -> float:
    labels = list(labels)
    index = {lab: i for i, lab in enumerate(labels)}
    try:
        cols = np.array([index[v] for v in y_true.tolist()], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"y_true contains a label not in labels: {exc.args[0]!r}") from None
    eps = np.finfo(proba.dtype).eps
    p = np.clip(proba, eps, 1 - eps)
    return float(-np.mean(np.log(p[np.arange(cols.size), cols])))


def label_key(v: Any) -> str:
    """One spelling per binary label, to match a spec's `positive_class` with the classes a
    model learned: True, 'true', 1, 1.0 and '1' are all '1'; False, 'false', 0 are '0'."""
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, np.integer):
        return str(int(v))
    text = str(v).strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return "1" if lowered == "true" else "0"
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def unambiguous_binary(labels: Sequence) -> bool:
    """Labels whose positive class needs no saying: {0, 1} or {false, true} (any spelling)."""
    return {label_key(v) for v in labels} <= {"0", "1"}


def positive_label(labels: Sequence, positive: Any = None) -> Any:
    """The positive class among two labels: the one `positive` names (by label_key), else the
    second in sorted order (1 / true when the labels are 0/1 or false/true)."""
    labels = list(labels)
    if positive is not None:
        want = label_key(positive)
        for lab in labels:
            if label_key(lab) == want:
                return lab
        raise ValueError(f"positive_class {positive!r} is not one of the classes "
                         f"{[str(x) for x in labels]}")
    return labels[1]


def compute_metrics(
    task: str, y_true: Sequence | np.ndarray, y_pred: Sequence | np.ndarray, proba: Any | None = None,
    classes: Sequence | None = None, positive: Any = None,
) -> dict[str, float]:
    """`positive`: the spec's positive_class for a binary task (F1 is that class's F1)."""
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    if task == "regression":
        yt = yt.astype(float)
        yp = yp.astype(float)
        return {
            "rmse": rmse(yt, yp),
            "mae": mae(yt, yp),
            "r2": r2(yt, yp) if len(yt) > 1 else float("nan"),
        }
    out: dict[str, float] = {"accuracy": accuracy(yt, yp)}
    labels = list(classes) if classes is not None else sorted(set(yt.tolist()))
    pos_index = 1
    if task == "binary_classification" and len(labels) == 2:
        try:
            pos = positive_label(labels, positive)
        except ValueError:  # a positive class these labels lack: no F1 rather than a guess
            pos = None
        if pos is not None:
            pos_index = labels.index(pos)
            out["f1"] = f1_binary(yt, yp, pos)
            out["precision"], out["recall"] = precision_recall(yt, yp, pos)
    else:
        out["f1"] = f1_weighted(yt, yp)
    out["f1_macro"] = f1_macro(yt, yp)
    if proba is not None and len(set(yt.tolist())) > 1:
        p = np.asarray(proba, dtype=float)
        p = np.clip(p, 1e-15, 1)
        p = p / p.sum(axis=1, keepdims=True)
        try:
            if p.shape[1] == 2:
                out["roc_auc"] = roc_auc_binary(yt == labels[pos_index], p[:, pos_index])
            else:
                out["roc_auc"] = roc_auc_ovr_weighted(yt, p, labels)
        except ValueError:
            pass
        try:
            out["log_loss"] = log_loss(yt, p, labels)
        except ValueError:
            pass
    return out
