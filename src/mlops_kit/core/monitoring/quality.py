"""Live quality: labelled captured rows of one version (bounded), turned into the same
metrics as training, and the check against the spec's promotion minimum."""

from __future__ import annotations

import math

import numpy as np

from mlops_kit.core.capture.chunks import Categorical, Column
from mlops_kit.core.metrics import compute_metrics
from mlops_kit.core.spec import LOWER_IS_BETTER, ModelSpec
from mlops_kit.core.stats import category_key, to_float_array

MAX_LABELLED_ROWS = 1_000_000


# -- live quality -------------------------------------------------------------------------
class Quality:
    """Labelled rows of one model version (bounded), turned into training-named metrics."""

    def __init__(self, numeric: bool) -> None:
        self.numeric = numeric
        self.y_true: list[np.ndarray] = []
        self.y_pred: list[np.ndarray] = []
        self.proba: list[np.ndarray] | None = []
        self.kept = self.labelled = 0

    def add(self, predictions: Column, probabilities: np.ndarray | None,
            labels: np.ndarray) -> None:
        """Labelled rows of one chunk: their predictions, probabilities (or None) and labels."""
        n = len(labels)
        self.labelled += n
        room = MAX_LABELLED_ROWS - self.kept
        if room <= 0:
            return
        take = min(room, n)
        preds = predictions[:take]
        labels = labels[:take]
        self.kept += take
        if self.numeric:
            self.y_true.append(labels.astype(np.float64))
            self.y_pred.append(to_float_array(
                preds.tolist() if isinstance(preds, Categorical) else preds))
            return
        self.y_true.append(labels.astype(object))
        self.y_pred.append(_category_keys(preds))
        if self.proba is not None and probabilities is not None and probabilities.ndim == 2 \
                and probabilities.shape[1]:
            self.proba.append(np.asarray(probabilities[:take], dtype=np.float32))
        else:
            self.proba = None  # some rows without probabilities: no roc_auc / log_loss

    def metrics(self, task: str, classes: list | None, positive=None) -> dict[str, float]:
        if not self.kept:
            return {}
        y_true, y_pred = np.concatenate(self.y_true), np.concatenate(self.y_pred)
        if self.numeric:
            ok = ~(np.isnan(y_true) | np.isnan(y_pred))
            return _finite(compute_metrics(task, y_true[ok], y_pred[ok]))
        keys = [category_key(c) for c in classes] if classes else None
        proba = np.concatenate(self.proba).astype(np.float64) if self.proba else None
        if proba is not None and (keys is None or proba.shape[1] != len(keys)):
            proba = None
        return _finite(compute_metrics(task, y_true.astype(str), y_pred.astype(str), proba, keys,
                                       positive))


def _category_keys(preds: Column) -> np.ndarray:
    """category_key of every prediction, computed once per distinct value."""
    if isinstance(preds, Categorical):
        keys = np.array([category_key(v) for v in preds.values.tolist()] + [None], dtype=object)
        return keys[preds.codes]
    if isinstance(preds, np.ndarray) and preds.dtype.kind in "fiub":
        uniq, inverse = np.unique(preds, return_inverse=True)
        return np.array([category_key(v) for v in uniq.tolist()], dtype=object)[inverse]
    return np.array([category_key(v) for v in preds], dtype=object)


def _finite(d: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def quality_check(spec: ModelSpec, champion: dict | None) -> tuple[bool, list[str]]:
    mon = spec.monitoring
    metric = mon.quality_metric or spec.promotion.metric
    if mon.quality_minimum is None or not champion:
        return False, []
    if champion["labelled"] < mon.min_rows:
        return False, []
    value = champion["metrics"].get(metric)
    if value is None:
        return False, []
    lower = metric in LOWER_IS_BETTER  # for log_loss/rmse/mae the "minimum" is a ceiling
    bad = value > mon.quality_minimum if lower else value < mon.quality_minimum
    if not bad:
        return False, []
    sign = ">" if lower else "<"
    return True, [f"live {metric} {value:.3f} {sign} {mon.quality_minimum:g} "
                  f"on {champion['labelled']} labelled rows"]
