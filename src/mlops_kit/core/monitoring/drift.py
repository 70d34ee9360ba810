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
    "CategoricalAccumulator",
    "FeatureDriftAccumulator",
    "NumericAccumulator",
    "PredictionAccumulator",
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
    if not any(v.__class__ is bool for v in values):
        try:  # fast path: numbers, numeric strings and None (-> NaN) convert in C
            return np.array(values, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            pass  # '' or text somewhere: element by element below
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


# -- streaming accumulators ---------------------------------------------------------------
# Monitoring sees up to millions of rows: it feeds them in chunks to these accumulators, which
# keep only bin counts (on the reference profile's edges), category counts and a bounded
# reservoir sample for KS / Wasserstein. Memory is O(bins + categories + RESERVOIR) per feature.
RESERVOIR = 5000
MAX_NEW_CATEGORIES = 200  # distinct unseen values tracked by name; the rest are lumped
MORE_NEW = "__more_new__"
CHART_CATEGORIES = 20


class NumericAccumulator:
    def __init__(self, ref: dict, feat: NumericFeature | None = None, *,
                 reservoir: int = RESERVOIR, seed: int = 0) -> None:
        self.ref = ref
        self.edges = np.asarray(ref.get("edges") or [], dtype=np.float64)
        self.counts = np.zeros(self.edges.size + 1, dtype=np.int64)
        self.lo = feat.min if feat is not None else None
        self.hi = feat.max if feat is not None else None
        self.n = self.nulls = self.outside = 0
        self.total = self.min = self.max = 0.0
        self.sample = np.empty(reservoir, dtype=np.float64)
        self.seen = 0  # finite values offered to the reservoir
        self._rng = np.random.default_rng(seed)

    def add(self, values: Sequence | np.ndarray) -> None:
        arr = to_float_array(values)
        self.n += arr.size
        nan = np.isnan(arr)
        self.nulls += int(nan.sum())
        good = arr[~nan]
        if not good.size:
            return
        self.counts += np.bincount(np.searchsorted(self.edges, good, side="left"),
                                   minlength=self.counts.size)
        outside = np.zeros(good.size, dtype=bool)
        if self.lo is not None:
            outside |= good < self.lo
        if self.hi is not None:
            outside |= good > self.hi
        self.outside += int(outside.sum())
        fin = good[np.isfinite(good)]
        if fin.size:
            first = self.seen == 0
            self.total += float(fin.sum())
            self.min = float(fin.min()) if first else min(self.min, float(fin.min()))
            self.max = float(fin.max()) if first else max(self.max, float(fin.max()))
            self._offer(fin)

    def _offer(self, x: np.ndarray) -> None:
        """Reservoir sampling (Vitter's algorithm R), vectorised per chunk."""
        k = self.sample.size
        filled = min(self.seen, k)
        take = min(k - filled, x.size)
        self.sample[filled:filled + take] = x[:take]
        rest = x[take:]
        if rest.size:
            index = self.seen + take + np.arange(rest.size)
            j = (self._rng.random(rest.size) * (index + 1)).astype(np.int64)
            keep = j < k
            self.sample[j[keep]] = rest[keep]
        self.seen += x.size

    @property
    def good(self) -> int:
        return self.n - self.nulls

    def current_sample(self) -> np.ndarray:
        return self.sample[: min(self.seen, self.sample.size)]

    def freqs(self) -> list[float]:
        total = int(self.counts.sum())
        return [float(c / total) if total else 0.0 for c in self.counts]

    def histogram(self) -> dict:
        e = [float(x) for x in self.edges]
        labels = ([f"≤ {e[0]:.4g}"] + [f"{a:.4g} – {b:.4g}" for a, b in zip(e, e[1:], strict=False)]
                  + [f"> {e[-1]:.4g}"]) if e else ["all"]
        return {"labels": labels, "ref": list(self.ref.get("freqs") or []), "cur": self.freqs(),
                "edges": e}

    def result(self, spec: ModelSpec, method: str):
        mon = spec.monitoring
        ref_freqs = list(self.ref.get("freqs") or [])
        value = psi(ref_freqs, self.freqs()) if ref_freqs and self.good else 0.0
        out: dict[str, Any] = {"type": "numeric", "psi": value, "method": method}
        p_value = None
        sample = self.current_sample()
        if method == "psi":
            stat, threshold, drifted = value, mon.threshold, value > mon.threshold
        elif method == "ks":
            stat, p_value = ks_statistic(self.ref.get("sample") or [], sample)
            threshold = KS_MIN_STAT
            drifted = p_value < KS_P_VALUE and stat > KS_MIN_STAT
        else:
            stat = wasserstein(self.ref.get("sample") or [], sample)
            threshold, drifted = mon.threshold, stat > mon.threshold
        reasons = [f"{method} {stat:.3g} > {threshold:g}"
                   + (f" (p={p_value:.2g})" if p_value is not None else "")] if drifted else []
        oor = self.outside / self.good if self.good else 0.0
        out.update(statistic=float(stat), threshold=float(threshold), drifted=drifted,
                   distribution_drifted=drifted)
        if p_value is not None:
            out["p_value"] = p_value
        out["out_of_range_rate"] = oor
        out["out_of_range"] = oor > mon.max_out_of_range_rate
        if out["out_of_range"]:
            out["drifted"] = True
            reasons.append(f"{_pct(oor)} of values outside [{self.lo}, {self.hi}] "
                           f"> {_pct(mon.max_out_of_range_rate)}")
        out.update(mean_ref=self.ref.get("mean"),
                   mean_cur=self.total / self.seen if self.seen else None,
                   min_cur=self.min if self.seen else None,
                   max_cur=self.max if self.seen else None,
                   sample_size=int(sample.size), histogram=self.histogram())
        return out, reasons, (self.nulls / self.n if self.n else 0.0)


class CategoricalAccumulator:
    def __init__(self, ref: dict, feat: CategoricalFeature | None = None, *,
                 max_new: int = MAX_NEW_CATEGORIES) -> None:
        self.ref = ref
        self.ref_freqs: dict[str, float] = dict(ref.get("freqs") or {})
        self.lump = OTHER_CATEGORY in self.ref_freqs
        self.allowed = set(feat.categories) if feat is not None and feat.categories else None
        self.max_new = max_new
        self.counts: dict[str, int] = {}
        self.new_counts: dict[str, int] = {}
        self.n = self.nulls = self.invalid = 0

    def add(self, values: Sequence) -> None:
        self.n += len(values)
        raw: dict[Any, int] = {}
        try:  # count raw values first: category_key runs once per distinct value
            for v in values:
                raw[v] = raw.get(v, 0) + 1
        except TypeError:  # an unhashable value: normalise every value
            raw = {}
            values = [category_key(v) for v in values]
            for v in values:
                raw[v] = raw.get(v, 0) + 1
        seen: dict[str | None, int] = {}
        for v, c in raw.items():
            k = category_key(v)
            seen[k] = seen.get(k, 0) + c
        self.nulls += seen.pop(None, 0)
        for k, c in seen.items():
            if k not in self.ref_freqs:
                if self.allowed is not None and k not in self.allowed:
                    self.invalid += c
                if self.lump and (self.allowed is None or k in self.allowed):
                    k = OTHER_CATEGORY  # a rare value the reference profile lumped together
                else:
                    if k not in self.new_counts and len(self.new_counts) >= self.max_new:
                        k = MORE_NEW  # bounded memory for a column of ids or free text
                    self.new_counts[k] = self.new_counts.get(k, 0) + c
            self.counts[k] = self.counts.get(k, 0) + c

    @property
    def good(self) -> int:
        return self.n - self.nulls

    def freqs(self) -> dict[str, float]:
        total = self.good
        return {k: c / total for k, c in self.counts.items()} if total else {}

    def histogram(self) -> dict:
        cur = self.freqs()
        keys = sorted(set(self.ref_freqs) | set(cur),
                      key=lambda k: -(self.ref_freqs.get(k, 0.0) + cur.get(k, 0.0)))
        shown, rest = keys[:CHART_CATEGORIES], keys[CHART_CATEGORIES:]
        ref = [float(self.ref_freqs.get(k, 0.0)) for k in shown]
        now = [float(cur.get(k, 0.0)) for k in shown]
        if rest:
            shown = [*shown, f"({len(rest)} more)"]
            ref.append(float(sum(self.ref_freqs.get(k, 0.0) for k in rest)))
            now.append(float(sum(cur.get(k, 0.0) for k in rest)))
        return {"labels": shown, "ref": ref, "cur": now}

    def result(self, spec: ModelSpec, method: str):
        mon = spec.monitoring
        total = self.good
        cur_freqs = self.freqs()
        ref_freqs = self.ref_freqs
        keys_all = sorted(set(ref_freqs) | set(cur_freqs))
        value = (psi([ref_freqs.get(k, 0.0) for k in keys_all],
                     [cur_freqs.get(k, 0.0) for k in keys_all]) if total and ref_freqs else 0.0)
        p_value = None
        if method == "psi":
            stat, threshold, drifted = value, mon.threshold, value > mon.threshold
        elif method == "jensen_shannon":
            stat = jensen_shannon(ref_freqs, cur_freqs) if total else 0.0
            threshold, drifted = JS_THRESHOLD, stat > JS_THRESHOLD
        else:
            stat, p_value = chi2_test(ref_freqs, self.counts)
            cramers_v = math.sqrt(stat / (total * max(1, len(keys_all) - 1))) if total else 0.0
            threshold = CHI2_P_VALUE
            drifted = p_value < CHI2_P_VALUE and cramers_v > CHI2_MIN_EFFECT
        reasons = [f"{method} {stat:.3g} "
                   + (f"p={p_value:.2g} < {threshold:g}" if p_value is not None
                      else f"> {threshold:g}")] if drifted else []
        distribution = drifted
        oor = self.invalid / total if total else 0.0
        if oor > mon.max_out_of_range_rate:
            drifted = True
            reasons.append(f"{_pct(oor)} of values not in the allowed categories "
                           f"> {_pct(mon.max_out_of_range_rate)}")
        new_share = sum(self.new_counts.values()) / total if total else 0.0
        if new_share > NEW_CATEGORY_SHARE:
            drifted = True
            reasons.append(f"new categories {sorted(self.new_counts)} take {_pct(new_share)} "
                           "of values")
        out: dict[str, Any] = {"type": "categorical", "psi": value, "method": method,
                               "statistic": float(stat), "threshold": float(threshold),
                               "drifted": drifted, "distribution_drifted": distribution}
        if p_value is not None:
            out["p_value"] = p_value
        out["out_of_range_rate"] = oor
        out["out_of_range"] = oor > mon.max_out_of_range_rate
        out["new_categories"] = sorted(self.new_counts, key=lambda k: -self.new_counts[k])
        out["new_category_rate"] = new_share
        out["histogram"] = self.histogram()
        return out, reasons, (self.nulls / self.n if self.n else 0.0)


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


class FeatureDriftAccumulator:
    """Feature drift over a stream of column chunks; result() has feature_drift's shape."""

    def __init__(self, profile: dict, spec: ModelSpec) -> None:
        self.spec = spec
        by_name = {f.name: f for f in spec.features}
        self.accs: dict[str, NumericAccumulator | CategoricalAccumulator] = {}
        for i, (name, ref) in enumerate((profile.get("features") or {}).items()):
            feat = by_name.get(name)
            if ref.get("type") == "numeric":
                self.accs[name] = NumericAccumulator(
                    ref, feat if isinstance(feat, NumericFeature) else None, seed=i)
            else:
                self.accs[name] = CategoricalAccumulator(
                    ref, feat if isinstance(feat, CategoricalFeature) else None)
        self.rows = 0

    def add_columns(self, columns: Mapping[str, Sequence], n: int | None = None) -> None:
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
                reasons.append(f"missing rate rose from {_pct(null_ref)} to {_pct(null_cur)} "
                               f"(+{_pct(increase)} > {_pct(mon.max_missing_rate_increase)})")
            if n < mon.min_rows:
                entry["drifted"] = entry["distribution_drifted"] = False
                entry["missing_rate_alert"] = entry["out_of_range"] = False
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


def feature_drift(profile: dict, columns: Mapping[str, Sequence], spec: ModelSpec) -> dict:
    """Compare current columns with the reference profile, feature by feature."""
    acc = FeatureDriftAccumulator(profile, spec)
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

    def add(self, predictions: Sequence) -> None:
        preds = list(np.asarray(predictions, dtype=object).ravel())
        self.rows += len(preds)
        self.acc.add(preds)

    def result(self) -> dict:
        ref = self.reference
        out: dict[str, Any] = {"type": ref.get("type"), "rows": self.rows,
                               "threshold": self.threshold}
        if self.numeric:
            acc = self.acc
            value = psi(ref.get("freqs") or [], acc.freqs()) if acc.good and ref.get("freqs") \
                else 0.0
            stat, p = ks_statistic(ref.get("sample") or [], acc.current_sample())
            out.update(psi=value, ks_statistic=stat, p_value=p, freqs=acc.freqs(),
                       mean_ref=ref.get("mean"),
                       mean_cur=acc.total / acc.seen if acc.seen else None,
                       histogram=acc.histogram())
        else:
            ref_f = dict(ref.get("freqs") or {})
            cur = self.acc.freqs()
            keys = sorted(set(ref_f) | set(cur))
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
