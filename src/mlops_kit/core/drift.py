"""Drift between a reference profile (made at validation/training) and current data.

numpy only: this runs in the light monitor function (no scipy, pandas or pyarrow). The p-values
use the classic asymptotic approximations (Kolmogorov distribution for KS, Wilson-Hilferty for
chi-square), which are accurate for the sample sizes monitoring sees (tens of rows and up).

Profile entry shapes (produced by core.validation and build_prediction_profile):
  numeric:     {"type": "numeric", "count", "null_rate", "mean", "std", "min", "max",
                "edges": [interior cut points], "freqs": [len(edges)+1 shares], "sample": [...]}
  categorical: {"type": "categorical", "null_rate", "freqs": {value: share}}
Bins are (-inf, e0], (e0, e1], ..., (e_last, inf).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlops_kit.core.spec import CategoricalFeature, ModelSpec, NumericFeature, Task

__all__ = [
    "OTHER_CATEGORY",
    "build_prediction_profile",
    "categorical_freqs",
    "categorical_profile",
    "chi2_test",
    "feature_drift",
    "jensen_shannon",
    "ks_statistic",
    "numeric_freqs",
    "numeric_profile",
    "prediction_drift",
    "psi",
    "quantile_edges",
    "wasserstein",
]

# Profiles of high-cardinality columns keep the top values and lump the rest here.
OTHER_CATEGORY = "__other__"
NEW_CATEGORY_SHARE = 0.05  # new categories above this share of rows mean drift
KS_P_VALUE = 0.01
KS_MIN_STAT = 0.1
JS_THRESHOLD = 0.1
CHI2_P_VALUE = 0.01
CHI2_MIN_EFFECT = 0.1  # Cramer's V: large samples make tiny differences "significant"
PROFILE_SAMPLE = 1000


# -- coercion -----------------------------------------------------------------------------
def _missing(v: Any) -> bool:
    return v is None or v == "" or (isinstance(v, float) and math.isnan(v))


def to_float_array(values: Sequence | np.ndarray) -> np.ndarray:
    """None / NaN / '' / unparseable text -> NaN; numbers and numeric strings -> float64."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        return values.astype(np.float64, copy=False).ravel()
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if _missing(v) or isinstance(v, bool):
            out[i] = np.nan
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            out[i] = np.nan
    return out


def category_key(v: Any) -> str | None:
    """One spelling per class: 1, 1.0, '1' and np.int64(1) are all '1'."""
    if _missing(v):
        return None
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, np.integer):
        return str(int(v))
    return str(v)


# -- distributions ------------------------------------------------------------------------
def quantile_edges(sample: np.ndarray, bins: int = 10) -> list[float]:
    """bins-1 interior cut points from quantiles, deduplicated for few-distinct-value data."""
    sample = np.asarray(sample, dtype=np.float64)
    sample = sample[~np.isnan(sample)]
    if sample.size == 0:
        return []
    qs = np.quantile(sample, np.linspace(0, 1, bins + 1)[1:-1])
    return [float(x) for x in np.unique(qs)]


def numeric_freqs(values: np.ndarray, edges: list[float]) -> list[float]:
    """Shares per bin (-inf,e0], (e0,e1], ..., (e_last,inf); NaN excluded. All zero if empty."""
    arr = to_float_array(values)
    arr = arr[~np.isnan(arr)]
    counts = np.bincount(
        np.searchsorted(np.asarray(edges, dtype=np.float64), arr, side="left"),
        minlength=len(edges) + 1,
    )
    total = counts.sum()
    return [float(c / total) if total else 0.0 for c in counts]


def categorical_freqs(values: Sequence[str | None]) -> dict[str, float]:
    counts: dict[str, int] = {}
    for v in values:
        key = category_key(v)
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    total = sum(counts.values())
    return {k: c / total for k, c in counts.items()} if total else {}


def numeric_profile(values: Sequence | np.ndarray, *, seed: int = 0) -> dict:
    arr = to_float_array(values)
    n = arr.size
    good = arr[~np.isnan(arr)]
    edges = quantile_edges(good)
    rng = np.random.default_rng(seed)
    sample = good if good.size <= PROFILE_SAMPLE else rng.choice(good, PROFILE_SAMPLE, False)
    return {
        "type": "numeric",
        "count": int(good.size),
        "null_rate": float(1 - good.size / n) if n else 0.0,
        "mean": float(good.mean()) if good.size else 0.0,
        "std": float(good.std()) if good.size else 0.0,
        "min": float(good.min()) if good.size else 0.0,
        "max": float(good.max()) if good.size else 0.0,
        "edges": edges,
        "freqs": numeric_freqs(good, edges) if good.size else [],
        "sample": [float(x) for x in sample],
    }


def categorical_profile(values: Sequence) -> dict:
    n = len(values)
    keys = [category_key(v) for v in values]
    present = [k for k in keys if k is not None]
    return {
        "type": "categorical",
        "null_rate": float(1 - len(present) / n) if n else 0.0,
        "freqs": categorical_freqs(present),
    }


# -- statistics ---------------------------------------------------------------------------
def psi(ref_freqs: Sequence[float], cur_freqs: Sequence[float], eps: float = 1e-4) -> float:
    """Population stability index; empty bins are floored at eps so the log stays finite."""
    ref = np.clip(np.asarray(ref_freqs, dtype=np.float64), eps, None)
    cur = np.clip(np.asarray(cur_freqs, dtype=np.float64), eps, None)
    if ref.shape != cur.shape:
        raise ValueError(f"psi needs equal bin counts, got {ref.size} and {cur.size}")
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution: 2 * sum (-1)^(j-1) exp(-2 j^2 lam^2)."""
    if lam < 0.2:  # the series converges slowly here and the tail is 1 to 1e-10 anyway
        return 1.0
    j = np.arange(1, 101, dtype=np.float64)
    terms = 2.0 * (-1.0) ** (j - 1) * np.exp(-2.0 * j * j * lam * lam)
    return float(min(1.0, max(0.0, terms.sum())))


def ks_statistic(ref_sample: Sequence | np.ndarray, cur_values: Sequence | np.ndarray):
    """Two-sample Kolmogorov-Smirnov statistic and asymptotic p-value (NaN excluded)."""
    a = np.sort(_clean(ref_sample))
    b = np.sort(_clean(cur_values))
    if a.size == 0 or b.size == 0:
        return 0.0, 1.0
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / a.size
    cdf_b = np.searchsorted(b, grid, side="right") / b.size
    stat = float(np.max(np.abs(cdf_a - cdf_b)))
    en = math.sqrt(a.size * b.size / (a.size + b.size))
    # Stephens' small-sample correction (Numerical Recipes 14.3).
    return stat, _kolmogorov_sf((en + 0.12 + 0.11 / en) * stat)


def wasserstein(ref_sample: Sequence | np.ndarray, cur_values: Sequence | np.ndarray) -> float:
    """Earth mover's distance between the two empirical CDFs, divided by the reference std."""
    a = np.sort(_clean(ref_sample))
    b = np.sort(_clean(cur_values))
    if a.size == 0 or b.size == 0:
        return 0.0
    grid = np.sort(np.concatenate([a, b]))
    widths = np.diff(grid)
    cdf_a = np.searchsorted(a, grid[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, grid[:-1], side="right") / b.size
    dist = float(np.sum(np.abs(cdf_a - cdf_b) * widths))
    scale = float(a.std())
    return dist / scale if scale > 0 else dist


def jensen_shannon(ref: Mapping[str, float], cur: Mapping[str, float]) -> float:
    """Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint)."""
    keys = sorted(set(ref) | set(cur))
    p = np.array([float(ref.get(k, 0.0)) for k in keys])
    q = np.array([float(cur.get(k, 0.0)) for k in keys])
    if p.sum() <= 0 or q.sum() <= 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(x: np.ndarray) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    return float(min(1.0, max(0.0, 0.5 * kl(p) + 0.5 * kl(q))))


def chi2_test(ref: Mapping[str, float], cur_counts: Mapping[str, int], eps: float = 1e-4):
    """Goodness of fit of current counts to reference shares; p via Wilson-Hilferty."""
    keys = sorted(set(ref) | set(cur_counts))
    observed = np.array([float(cur_counts.get(k, 0)) for k in keys])
    total = observed.sum()
    if total <= 0 or len(keys) < 2:
        return 0.0, 1.0
    shares = np.array([max(float(ref.get(k, 0.0)), eps) for k in keys])
    expected = shares / shares.sum() * total
    stat = float(np.sum((observed - expected) ** 2 / expected))
    if stat <= 0:
        return 0.0, 1.0  # Wilson-Hilferty is poor near 0 with few degrees of freedom
    k = len(keys) - 1
    z = ((stat / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))
    return stat, float(0.5 * math.erfc(z / math.sqrt(2)))


def _clean(values: Sequence | np.ndarray) -> np.ndarray:
    arr = to_float_array(values)
    return arr[np.isfinite(arr)]


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


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _numeric_drift(ref: dict, values: Sequence, feat: NumericFeature | None, spec, method):
    mon = spec.monitoring
    arr = to_float_array(values)
    n = arr.size
    nan = np.isnan(arr)
    good = arr[~nan]
    edges = list(ref.get("edges") or [])
    ref_freqs = list(ref.get("freqs") or [])
    value = psi(ref_freqs, numeric_freqs(good, edges)) if ref_freqs and good.size else 0.0
    out: dict[str, Any] = {"type": "numeric", "psi": value, "method": method}
    p_value = None
    if method == "psi":
        stat, threshold, drifted = value, mon.threshold, value > mon.threshold
    elif method == "ks":
        stat, p_value = ks_statistic(ref.get("sample") or [], good)
        threshold = KS_MIN_STAT
        drifted = p_value < KS_P_VALUE and stat > KS_MIN_STAT
    else:
        stat = wasserstein(ref.get("sample") or [], good)
        threshold, drifted = mon.threshold, stat > mon.threshold
    reasons = (
        [
            f"{method} {stat:.3g} > {threshold:g}"
            + (f" (p={p_value:.2g})" if p_value is not None else "")
        ]
        if drifted
        else []
    )
    lo = feat.min if feat is not None else None
    hi = feat.max if feat is not None else None
    outside = np.zeros(good.size, dtype=bool)
    if lo is not None:
        outside |= good < lo
    if hi is not None:
        outside |= good > hi
    oor = float(outside.mean()) if good.size else 0.0
    if oor > mon.max_out_of_range_rate:
        drifted = True
        reasons.append(
            f"{_pct(oor)} of values outside [{lo}, {hi}] > {_pct(mon.max_out_of_range_rate)}"
        )
    out.update(statistic=float(stat), threshold=float(threshold), drifted=drifted)
    if p_value is not None:
        out["p_value"] = p_value
    out["out_of_range_rate"] = oor
    return out, reasons, (float(nan.mean()) if n else 0.0)


def _categorical_drift(ref: dict, values: Sequence, feat, spec, method):
    mon = spec.monitoring
    keys = [category_key(v) for v in values]
    n = len(keys)
    present = [k for k in keys if k is not None]
    ref_freqs: dict[str, float] = dict(ref.get("freqs") or {})
    lump = OTHER_CATEGORY in ref_freqs
    counts: dict[str, int] = {}
    new_counts: dict[str, int] = {}
    allowed = set(feat.categories) if feat is not None and feat.categories else None
    invalid = 0
    for k in present:
        if k not in ref_freqs:
            if allowed is not None and k not in allowed:
                invalid += 1
            if lump and (allowed is None or k in allowed):
                k = OTHER_CATEGORY  # a rare value the reference profile lumped together
            else:
                new_counts[k] = new_counts.get(k, 0) + 1
        counts[k] = counts.get(k, 0) + 1
    total = len(present)
    cur_freqs = {k: c / total for k, c in counts.items()} if total else {}
    keys_all = sorted(set(ref_freqs) | set(cur_freqs))
    value = (
        psi([ref_freqs.get(k, 0.0) for k in keys_all], [cur_freqs.get(k, 0.0) for k in keys_all])
        if total and ref_freqs
        else 0.0
    )
    p_value = None
    if method == "psi":
        stat, threshold, drifted = value, mon.threshold, value > mon.threshold
    elif method == "jensen_shannon":
        stat = jensen_shannon(ref_freqs, cur_freqs) if total else 0.0
        threshold, drifted = JS_THRESHOLD, stat > JS_THRESHOLD
    else:
        stat, p_value = chi2_test(ref_freqs, counts)
        cramers_v = math.sqrt(stat / (total * max(1, len(keys_all) - 1))) if total else 0.0
        threshold = CHI2_P_VALUE
        drifted = p_value < CHI2_P_VALUE and cramers_v > CHI2_MIN_EFFECT
    reasons = (
        [
            f"{method} {stat:.3g} "
            + (f"p={p_value:.2g} < {threshold:g}" if p_value is not None else f"> {threshold:g}")
        ]
        if drifted
        else []
    )
    oor = invalid / total if total else 0.0
    if oor > mon.max_out_of_range_rate:
        drifted = True
        reasons.append(
            f"{_pct(oor)} of values not in the allowed categories "
            f"> {_pct(mon.max_out_of_range_rate)}"
        )
    new_share = sum(new_counts.values()) / total if total else 0.0
    if new_share > NEW_CATEGORY_SHARE:
        drifted = True
        reasons.append(f"new categories {sorted(new_counts)} take {_pct(new_share)} of values")
    out: dict[str, Any] = {
        "type": "categorical",
        "psi": value,
        "method": method,
        "statistic": float(stat),
        "threshold": float(threshold),
        "drifted": drifted,
    }
    if p_value is not None:
        out["p_value"] = p_value
    out["out_of_range_rate"] = oor
    out["new_categories"] = sorted(new_counts, key=lambda k: -new_counts[k])
    out["new_category_rate"] = new_share
    return out, reasons, (1 - total / n if n else 0.0)


def feature_drift(profile: dict, columns: Mapping[str, Sequence], spec: ModelSpec) -> dict:
    """Compare current columns with the reference profile, feature by feature."""
    mon = spec.monitoring
    num_method, cat_method = _methods(spec)
    by_name = {f.name: f for f in spec.features}
    n = max((len(v) for v in columns.values()), default=0)
    result: dict[str, Any] = {"drifted": False, "rows": n, "features": {}, "drifted_features": []}
    if n < mon.min_rows:
        result["insufficient_data"] = True
        result["message"] = (
            f"only {n} rows, monitoring.min_rows is {mon.min_rows}: drift not judged"
        )
    for name, ref in (profile.get("features") or {}).items():
        feat = by_name.get(name)
        values = columns.get(name)
        if values is None:
            values = [None] * n  # a column that vanished is 100% missing
        if ref.get("type") == "numeric":
            numeric = feat if isinstance(feat, NumericFeature) else None
            entry, reasons, null_cur = _numeric_drift(ref, values, numeric, spec, num_method)
        else:
            cat = feat if isinstance(feat, CategoricalFeature) else None
            entry, reasons, null_cur = _categorical_drift(ref, values, cat, spec, cat_method)
        null_ref = float(ref.get("null_rate", 0.0))
        increase = null_cur - null_ref
        if increase > mon.max_missing_rate_increase:
            entry["drifted"] = True
            reasons.append(
                f"missing rate rose from {_pct(null_ref)} to {_pct(null_cur)} "
                f"(+{_pct(increase)} > {_pct(mon.max_missing_rate_increase)})"
            )
        if n < mon.min_rows:
            entry["drifted"] = False
            reasons = []
        entry.update(
            null_rate_ref=null_ref,
            null_rate_cur=null_cur,
            missing_rate_increase=increase,
            reasons=reasons,
        )
        result["features"][name] = entry
        if entry["drifted"]:
            result["drifted_features"].append(name)
    result["drifted"] = bool(result["drifted_features"])
    return result


# -- prediction drift ---------------------------------------------------------------------
def build_prediction_profile(predictions: Sequence, task: Task | str) -> dict:
    """Profile entry of holdout predictions (stored with the model, compared by the monitor)."""
    task = Task(task)
    preds = list(np.asarray(predictions, dtype=object).ravel())
    return categorical_profile(preds) if task.is_classification else numeric_profile(preds)


def prediction_drift(reference: dict, predictions: Sequence, threshold: float = 0.2) -> dict:
    """PSI of live predictions against the holdout prediction profile (plus KS for numeric)."""
    preds = list(np.asarray(predictions, dtype=object).ravel())
    out: dict[str, Any] = {
        "type": reference.get("type"),
        "rows": len(preds),
        "threshold": threshold,
    }
    if reference.get("type") == "numeric":
        arr = to_float_array(preds)
        good = arr[~np.isnan(arr)]
        cur = numeric_freqs(good, list(reference.get("edges") or []))
        value = (
            psi(reference.get("freqs") or [], cur) if good.size and reference.get("freqs") else 0.0
        )
        stat, p = ks_statistic(reference.get("sample") or [], good)
        out.update(
            psi=value,
            ks_statistic=stat,
            p_value=p,
            freqs=cur,
            mean_ref=reference.get("mean"),
            mean_cur=float(good.mean()) if good.size else None,
        )
    else:
        ref = dict(reference.get("freqs") or {})
        cur = categorical_freqs(preds)
        keys = sorted(set(ref) | set(cur))
        value = (
            psi([ref.get(k, 0.0) for k in keys], [cur.get(k, 0.0) for k in keys])
            if cur and ref
            else 0.0
        )
        out.update(psi=value, freqs=cur, freqs_ref=ref)
    out["drifted"] = bool(value > threshold)
    out["reasons"] = [f"prediction psi {value:.3g} > {threshold:g}"] if out["drifted"] else []
    return out
