"""Streaming per-feature accumulators: a window of values in chunks, bounded memory
(a reservoir sample for KS/Wasserstein, counts for PSI and categories)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlops_kit.core.capture.chunks import Categorical
from mlops_kit.core.spec import CategoricalFeature, ModelSpec, NumericFeature
from mlops_kit.core.stats import (
    CHI2_MIN_EFFECT,
    CHI2_P_VALUE,
    JS_THRESHOLD,
    KS_MIN_STAT,
    KS_P_VALUE,
    NEW_CATEGORY_SHARE,
    OTHER_CATEGORY,
    Reservoir,
    category_key,
    chi2_test,
    jensen_shannon,
    ks_statistic,
    psi,
    to_float_array,
    wasserstein,
)

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
        self.reservoir = Reservoir(reservoir, seed)

    def add(self, values: Sequence | np.ndarray | Categorical) -> None:
        arr = to_float_array(values.tolist() if isinstance(values, Categorical) else values)
        self.n += arr.size
        finite = np.isfinite(arr)
        if finite.all():  # the common case: one pass instead of five
            good = arr
        else:
            nan = np.isnan(arr)
            self.nulls += int(nan.sum())
            good = arr[~nan]
            finite = finite[~nan]
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
        fin = good if good is arr else good[finite]
        if fin.size:
            first = self.reservoir.seen == 0
            self.total += float(fin.sum())
            self.min = float(fin.min()) if first else min(self.min, float(fin.min()))
            self.max = float(fin.max()) if first else max(self.max, float(fin.max()))
            self.reservoir.offer(fin)

    @property
    def good(self) -> int:
        return self.n - self.nulls

    @property
    def seen(self) -> int:
        """Finite values offered to the reservoir."""
        return self.reservoir.seen

    def current_sample(self) -> np.ndarray:
        return self.reservoir.sample()

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
            reasons.append(f"{pct(oor)} of values outside [{self.lo}, {self.hi}] "
                           f"> {pct(mon.max_out_of_range_rate)}")
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

    def add(self, values: Sequence | np.ndarray | Categorical) -> None:
        self.n += len(values)
        raw: dict[Any, int] = {}
        if isinstance(values, Categorical):  # codes: counted in C
            counted, missing = values.counts()
            raw.update(counted)
            if missing:
                raw[None] = missing
        elif isinstance(values, np.ndarray) and values.dtype.kind in "iub" and values.size \
                and values.min() >= 0 and values.max() < 1 << 16:  # class labels: bincount
            counts = np.bincount(values.astype(np.int64, copy=False).ravel())
            nz = np.flatnonzero(counts)
            raw = dict(zip(nz.astype(values.dtype).tolist(), counts[nz].tolist(), strict=True))
        elif isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
            uniq, counts = np.unique(values, return_counts=True)
            raw = dict(zip(uniq.tolist(), counts.tolist(), strict=True))
            nan = [k for k in raw if isinstance(k, float) and k != k]  # NaNs do not compare equal
            if nan:
                raw[None] = sum(raw.pop(k) for k in nan)
        else:
            try:  # count raw values first: category_key runs once per distinct value
                for v in values:
                    raw[v] = raw.get(v, 0) + 1
            except TypeError:  # an unhashable value: normalise every value
                raw = {}
                for v in values:
                    k = category_key(v)
                    raw[k] = raw.get(k, 0) + 1
        self._add_counts(raw)

    def _add_counts(self, raw: dict[Any, int]) -> None:
        seen: dict[str | None, int] = {}
        for v, c in raw.items():
            k = category_key(v)
            seen[k] = seen.get(k, 0) + c
        self.nulls += seen.pop(None, 0)
        for key, c in seen.items():
            k = str(key)  # None (missing) was popped above
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
            reasons.append(f"{pct(oor)} of values not in the allowed categories "
                           f"> {pct(mon.max_out_of_range_rate)}")
        new_share = sum(self.new_counts.values()) / total if total else 0.0
        if new_share > NEW_CATEGORY_SHARE:
            drifted = True
            reasons.append(f"new categories {sorted(self.new_counts)} take {pct(new_share)} "
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


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"
