"""Drift of a window of captured rows against the reference profile: per feature (streaming
accumulators) and of the predictions. numpy only (the light monitor function)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlops_kit.core.capture.chunks import Categorical
from mlops_kit.core.monitoring.accumulators import (
    MAX_NEW_CATEGORIES,
    BooleanAccumulator,
    CategoricalAccumulator,
    DatetimeAccumulator,
    NumericAccumulator,
    TextAccumulator,
    pct,
)
from mlops_kit.core.spec import (
    BooleanFeature,
    CategoricalFeature,
    DatetimeFeature,
    ModelSpec,
    NumericFeature,
    Task,
    TextFeature,
)
from mlops_kit.core.stats import categorical_profile, ks_statistic, numeric_profile, psi

__all__ = ["FeatureDriftAccumulator", "PredictionAccumulator", "build_prediction_profile",
           "feature_drift", "prediction_drift"]


# -- feature drift ------------------------------------------------------------------------
def _methods(spec: ModelSpec) -> tuple[str, str]:
    """Per-type methods win; the global drift_method applies where the per-type one is default."""
    mon = spec.monitoring
    num, cat = mon.numeric_method, mon.categorical_method
    if num == "psi" and mon.drift_method in ("ks", "wasserstein"):
        num = mon.drift_method
    if cat == "psi" and mon.drift_method in ("chi2", "jensen_shannon"):
        cat = mon.drift_method
    return num, cat




class FeatureDriftAccumulator:
    """Feature drift over a stream of column chunks; result() has feature_drift's shape.
    `now_days` (the monitor's clock, days since 1970-01-01 UTC) lets datetime features count
    dates in the future as out of range."""

    def __init__(self, profile: dict, spec: ModelSpec, *, now_days: float | None = None
                 ) -> None:
        self.spec = spec
        by_name = {f.name: f for f in spec.features}
        self.accs: dict[str, NumericAccumulator | CategoricalAccumulator] = {}
        for i, (name, ref) in enumerate((profile.get("features") or {}).items()):
            feat = by_name.get(name)
            if isinstance(feat, TextFeature):
                self.accs[name] = TextAccumulator(ref, seed=i)
            elif isinstance(feat, DatetimeFeature):
                self.accs[name] = DatetimeAccumulator(ref, feat, spec, now_days=now_days,
                                                      seed=i)
            elif isinstance(feat, BooleanFeature) and ref.get("type") == "numeric":
                self.accs[name] = BooleanAccumulator(ref, None, seed=i)
            elif ref.get("type") == "numeric":
                self.accs[name] = NumericAccumulator(
                    ref, feat if isinstance(feat, NumericFeature) else None, seed=i)
            else:
                self.accs[name] = CategoricalAccumulator(
                    ref, feat if isinstance(feat, CategoricalFeature) else None)
        self.rows = 0

    def add_columns(self, columns: Mapping[str, Sequence | np.ndarray | Categorical],
                    n: int | None = None) -> None:
        if n is None:
            n = max((len(v) for v in columns.values()), default=0)
        self.rows += n
        for name, acc in self.accs.items():
            values = columns.get(name)
            acc.add([None] * n if values is None else values)  # a vanished column is missing

    def result(self) -> dict:
        spec, mon = self.spec, self.spec.monitoring
        num_method, cat_method = _methods(spec)
        n = self.rows
        result: dict[str, Any] = {"drifted": False, "rows": n, "features": {},
                                  "drifted_features": [], "missing_rate_alerts": [],
                                  "out_of_range_alerts": []}
        if n < mon.min_rows:
            result["insufficient_data"] = True
            result["message"] = f"only {n} rows, monitoring.min_rows is {mon.min_rows}: drift not judged"
        for name, acc in self.accs.items():
            method = num_method if isinstance(acc, NumericAccumulator) else cat_method
            entry, reasons, null_cur = acc.result(spec, method)
            null_ref = float(acc.ref.get("null_rate", 0.0))
            increase = null_cur - null_ref
            entry["missing_rate_alert"] = increase > mon.max_missing_rate_increase
            if entry["missing_rate_alert"]:
                entry["drifted"] = True
                reasons.append(f"missing rate rose from {pct(null_ref)} to {pct(null_cur)} "
                               f"(+{pct(increase)} > {pct(mon.max_missing_rate_increase)})")
            if n < mon.min_rows:
                entry["drifted"] = entry["distribution_drifted"] = False
                entry["missing_rate_alert"] = entry["out_of_range"] = False
                for key in ("oov_alert", "top_term_alert"):  # text
                    if key in entry:
                        entry[key] = False
                for part in (entry.get("parts") or {}).values():  # datetime
                    part["drifted"] = False
                reasons = []
            entry.update(null_rate_ref=null_ref, null_rate_cur=null_cur,
                         missing_rate_increase=increase, reasons=reasons)
            result["features"][name] = entry
            if entry["drifted"]:
                result["drifted_features"].append(name)
            if entry["missing_rate_alert"]:
                result["missing_rate_alerts"].append(name)
            if entry["out_of_range"]:
                result["out_of_range_alerts"].append(name)
        result["drifted"] = bool(result["drifted_features"])
        return result


def feature_drift(profile: dict, columns: Mapping[str, Sequence], spec: ModelSpec, *,
                  now_days: float | None = None) -> dict:
    """Compare current columns with the reference profile, feature by feature."""
    acc = FeatureDriftAccumulator(profile, spec, now_days=now_days)
    acc.add_columns(columns)
    return acc.result()


# -- prediction drift ---------------------------------------------------------------------
def build_prediction_profile(predictions: Sequence, task: Task | str) -> dict:
    """Profile entry of holdout predictions (stored with the model, compared by the monitor)."""
    task = Task(task)
    preds = list(np.asarray(predictions, dtype=object).ravel())
    return categorical_profile(preds) if task.is_classification else numeric_profile(preds)


class PredictionAccumulator:
    """Live predictions against the holdout prediction profile, streamed in chunks."""

    def __init__(self, reference: dict, threshold: float = 0.2) -> None:
        self.reference = reference
        self.threshold = threshold
        self.rows = 0
        self.numeric = reference.get("type") == "numeric"
        self.acc = (NumericAccumulator(reference, None, seed=7) if self.numeric
                    else CategoricalAccumulator(reference, None, max_new=MAX_NEW_CATEGORIES))

    def add(self, predictions: Sequence | np.ndarray | Categorical) -> None:
        if isinstance(predictions, Categorical):
            preds: Any = predictions
        elif isinstance(predictions, np.ndarray) and predictions.dtype.kind in "fiub":
            preds = predictions.ravel()
        else:
            preds = list(np.asarray(predictions, dtype=object).ravel())
        self.rows += len(preds)
        self.acc.add(preds)

    def result(self) -> dict:
        ref = self.reference
        out: dict[str, Any] = {"type": ref.get("type"), "rows": self.rows,
                               "threshold": self.threshold}
        if isinstance(self.acc, NumericAccumulator):
            acc = self.acc
            value = psi(ref.get("freqs") or [], acc.freqs()) if acc.good and ref.get("freqs") \
                else 0.0
            stat, p = ks_statistic(ref.get("sample") or [], acc.current_sample())
            out.update(psi=value, ks_statistic=stat, p_value=p, freqs=acc.freqs(),
                       mean_ref=ref.get("mean"),
                       mean_cur=acc.total / acc.seen if acc.seen else None,
                       histogram=acc.histogram())
        else:
            ref_f: dict[str, float] = dict(ref.get("freqs") or {})
            cur = self.acc.freqs()
            keys: list[str] = sorted(set(ref_f) | set(cur))
            value = (psi([ref_f.get(k, 0.0) for k in keys], [cur.get(k, 0.0) for k in keys])
                     if cur and ref_f else 0.0)
            out.update(psi=value, freqs=cur, freqs_ref=ref_f, histogram=self.acc.histogram())
        out["drifted"] = bool(value > self.threshold)
        out["reasons"] = [f"prediction psi {value:.3g} > {self.threshold:g}"] \
            if out["drifted"] else []
        return out


def prediction_drift(reference: dict, predictions: Sequence, threshold: float = 0.2) -> dict:
    """PSI of live predictions against the holdout prediction profile (plus KS for numeric)."""
    acc = PredictionAccumulator(reference, threshold)
    acc.add(predictions)
    return acc.result()
