"""Model metrics, the same at training, at promotion (champion re-scored on the candidate's
holdout) and in live monitoring from late labels. Training side: uses scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def compute_metrics(
    task: str, y_true: Sequence, y_pred: Sequence, proba: Any | None = None,
    classes: Sequence | None = None,
) -> dict[str, float]:
    from sklearn import metrics as m

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if task == "regression":
        y_true = y_true.astype(float)
        y_pred = y_pred.astype(float)
        return {
            "rmse": float(np.sqrt(m.mean_squared_error(y_true, y_pred))),
            "mae": float(m.mean_absolute_error(y_true, y_pred)),
            "r2": float(m.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
        }
    out: dict[str, float] = {"accuracy": float(m.accuracy_score(y_true, y_pred))}
    labels = list(classes) if classes is not None else sorted(set(y_true.tolist()))
    if task == "binary_classification" and len(labels) == 2:
        out["f1"] = float(m.f1_score(y_true, y_pred, pos_label=labels[1], zero_division=0))
    else:
        out["f1"] = float(m.f1_score(y_true, y_pred, average="weighted", zero_division=0))
    if proba is not None and len(set(y_true.tolist())) > 1:
        p = np.asarray(proba, dtype=float)
        p = np.clip(p, 1e-15, 1)
        p = p / p.sum(axis=1, keepdims=True)
        try:
            if p.shape[1] == 2:
                out["roc_auc"] = float(m.roc_auc_score(y_true == labels[1], p[:, 1]))
            else:
                out["roc_auc"] = float(
                    m.roc_auc_score(y_true, p, multi_class="ovr", average="weighted",
                                    labels=labels)
                )
        except ValueError:
            pass
        out["log_loss"] = float(m.log_loss(y_true, p, labels=labels))
    return out
