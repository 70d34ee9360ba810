"""Streaming per-feature accumulators: a window of values in chunks, bounded memory
(a reservoir sample for KS/Wasserstein, counts for PSI and categories)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from mlops_kit.core.capture.chunks import Categorical
from mlops_kit.core.features import (
    CALENDAR_OF_PART,
    CALENDAR_SIZES,
    calendar_parts,
    text_tokens,
)
from mlops_kit.core.spec import CategoricalFeature, DatetimeFeature, ModelSpec, NumericFeature
from mlops_kit.core.stats import (
    CHI2_MIN_EFFECT,
    CHI2_P_VALUE,
    JS_THRESHOLD,
    KS_MIN_STAT,
    KS_P_VALUE,
    NEW_CATEGORY_SHARE,
    OTHER_CATEGORY,
    Reservoir,
    TermCounts,
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

    def range_text(self) -> str:
        return f"outside [{self.lo}, {self.hi}]"

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
            reasons.append(f"{pct(oor)} of values {self.range_text()} "
                           f"> {pct(mon.max_out_of_range_rate)}")
        out.update(mean_ref=self.ref.get("mean"),
                   mean_cur=self.total / self.seen if self.seen else None,
                   min_cur=self.min if self.seen else None,
                   max_cur=self.max if self.seen else None,
                   sample_size=int(sample.size), histogram=self.histogram())
        return out, reasons, (self.nulls / self.n if self.n else 0.0)


class BooleanAccumulator(NumericAccumulator):
    """A boolean (captured as 1.0 / 0.0) judged as a rate: the distribution is the two shares
    false / true, against the training's share of true (the profile's mean)."""

    def freqs(self) -> list[float]:
        rate = self.total / self.seen if self.seen else 0.0
        return [1.0 - rate, rate] if self.seen else [0.0, 0.0]

    def ref_freqs(self) -> list[float]:
        rate = float(self.ref.get("mean") or 0.0)
        return [1.0 - rate, rate] if self.ref.get("count") else []

    def histogram(self) -> dict:
        return {"labels": ["false", "true"], "ref": self.ref_freqs(), "cur": self.freqs()}

    def result(self, spec: ModelSpec, method: str):
        mon = spec.monitoring
        ref, cur = self.ref_freqs(), self.freqs()
        value = psi(ref, cur) if ref and self.seen else 0.0
        drifted = value > mon.threshold
        rate_ref = ref[1] if ref else None
        rate_cur = cur[1] if self.seen else None
        reasons = [f"true rate {pct(rate_ref or 0.0)} -> {pct(rate_cur or 0.0)} "
                   f"(psi {value:.3g} > {mon.threshold:g})"] if drifted else []
        out: dict[str, Any] = {
            "type": "boolean", "psi": value, "method": "psi", "statistic": value,
            "threshold": float(mon.threshold), "drifted": drifted,
            "distribution_drifted": drifted, "true_rate_ref": rate_ref,
            "true_rate_cur": rate_cur, "out_of_range_rate": 0.0, "out_of_range": False,
            "histogram": self.histogram()}
        return out, reasons, (self.nulls / self.n if self.n else 0.0)


class TextAccumulator(NumericAccumulator):
    """A text feature: its length in words (a numeric distribution, as validation profiled
    it), and, when the training profile kept the model's words (`terms`), the share of words
    out of the model's vocabulary and the shift of the training's top words' shares. The words
    are the model's: features.text_tokens, the TF-IDF's tokens."""

    def __init__(self, ref: dict, *, seed: int = 0) -> None:
        super().__init__(ref, None, seed=seed)
        self.terms_ref: dict = ref.get("terms") or {}
        self.top_ref: dict[str, float] = dict(self.terms_ref.get("top") or {})
        self.terms = TermCounts(self.terms_ref.get("vocabulary") or (),
                                [t for t in self.top_ref if t != OTHER_CATEGORY])

    def add(self, values: Sequence | np.ndarray | Categorical) -> None:
        if isinstance(values, Categorical):  # dictionary-coded: each distinct text once
            distinct = [text_tokens(v) for v in values.values.tolist()]
            sizes = np.asarray([len(t) or np.nan for t in distinct] + [np.nan])
            super().add(sizes[values.codes])  # code -1 (missing) picks the trailing NaN
            if self.terms_ref:
                per = np.bincount(values.codes[values.codes >= 0], minlength=len(distinct))
                words: Counter[str] = Counter()
                for tokens, c in zip(distinct, per.tolist(), strict=True):
                    if c and tokens:
                        for t in tokens:
                            words[t] += c
                self.terms.add_words(words, int(per[[bool(t) for t in distinct]].sum()))
            return
        texts = np.asarray(values, dtype=object).reshape(-1)
        lengths = np.full(texts.size, np.nan)
        flat: list[str] = []
        docs = 0
        for i, v in enumerate(texts.tolist()):
            tokens = text_tokens(v)
            if tokens:  # one flat list of words: no list per text kept for the GC to walk
                lengths[i] = len(tokens)
                flat.extend(tokens)
                docs += 1
        super().add(lengths)
        if self.terms_ref:
            self.terms.add_words(Counter(flat), docs)

    def result(self, spec: ModelSpec, method: str):
        out, reasons, null = super().result(spec, method)
        out["type"] = "text"
        reasons = [f"length in words: {r}" for r in reasons]
        if not self.terms_ref:
            return out, reasons, null
        mon = spec.monitoring
        oov_ref = float(self.terms_ref.get("oov_rate") or 0.0)
        oov = self.terms.oov_rate
        cur = self.terms.shares(t for t in self.top_ref if t != OTHER_CATEGORY)
        shift = jensen_shannon(self.top_ref, cur) if cur else 0.0
        out.update(oov_rate_ref=oov_ref, oov_rate_cur=oov, tokens=self.terms.tokens,
                   top_term_shift=shift, top_term_threshold=mon.max_top_term_shift,
                   oov_alert=oov - oov_ref > mon.max_oov_rate_increase,
                   top_term_alert=shift > mon.max_top_term_shift,
                   top_terms=_top_terms(self.top_ref, cur))
        if out["oov_alert"]:
            out["drifted"] = True
            reasons.append(f"{pct(oov)} of words are out of the model's vocabulary, "
                           f"{pct(oov_ref)} at training (+{pct(oov - oov_ref)} > "
                           f"{pct(mon.max_oov_rate_increase)})")
        if out["top_term_alert"]:
            out["drifted"] = True
            reasons.append(f"top-term shift {shift:.3g} > {mon.max_top_term_shift:g} "
                           "(Jensen-Shannon over the training's top words)")
        return out, reasons, null


def _top_terms(ref: dict[str, float], cur: dict[str, float], n: int = 10) -> list[dict]:
    """The words whose share moved most, for the report."""
    words = [t for t in ref if t != OTHER_CATEGORY]
    moved = sorted(words, key=lambda t: -abs(cur.get(t, 0.0) - ref[t]))[:n]
    return [{"term": t, "ref": ref[t], "cur": cur.get(t, 0.0)} for t in moved]


class DatetimeAccumulator(NumericAccumulator):
    """A datetime (captured as days since 1970-01-01 UTC): the days' distribution, the
    distribution of the calendar part of each declared cycle (month, weekday, hour; the
    reference from the profile's sample), and out-of-range dates: outside the training's
    [min, max] widened by monitoring.date_margin times the span, or later than now +
    monitoring.max_future_days (unless the training's own dates went further)."""

    def __init__(self, ref: dict, feat: DatetimeFeature | None, spec: ModelSpec, *,
                 now_days: float | None = None, seed: int = 0) -> None:
        super().__init__(ref, None, seed=seed)
        mon = spec.monitoring
        if ref.get("count"):
            lo, hi = float(ref.get("min", 0.0)), float(ref.get("max", 0.0))
            pad = (hi - lo) * mon.date_margin
            self.lo, self.hi = lo - pad, hi + pad
        # the future is out of range unless training itself had dates that far ahead (an
        # expiry date, a booking): then the widened range alone judges
        self.future_limit = None if now_days is None else now_days + mon.max_future_days
        if self.future_limit is not None and float(ref.get("max") or 0.0) <= self.future_limit:
            self.hi = self.future_limit if self.hi is None else min(self.hi, self.future_limit)
        parts = (feat.parts if feat is not None else ())
        self.calendar = list(dict.fromkeys(CALENDAR_OF_PART[p] for p in parts
                                           if p in CALENDAR_OF_PART))
        self.part_counts = {c: np.zeros(CALENDAR_SIZES[c], dtype=np.int64)
                            for c in self.calendar}
        sample = np.asarray(ref.get("sample") or [], dtype=np.float64)
        self.part_ref = {c: _shares(np.bincount(v, minlength=CALENDAR_SIZES[c]))
                         for c, v in calendar_parts(sample, self.calendar).items()}

    def range_text(self) -> str:
        return f"outside {_date(self.lo)} .. {_date(self.hi)}"

    def add(self, values: Sequence | np.ndarray | Categorical) -> None:
        arr = to_float_array(values.tolist() if isinstance(values, Categorical) else values)
        super().add(arr)
        good = arr[np.isfinite(arr)]
        for c, v in calendar_parts(good, self.calendar).items():
            self.part_counts[c] += np.bincount(v, minlength=CALENDAR_SIZES[c])

    def result(self, spec: ModelSpec, method: str):
        out, reasons, null = super().result(spec, method)
        reasons = [r if "outside" in r else f"days: {r}" for r in reasons]
        mon = spec.monitoring
        parts: dict[str, Any] = {}
        for c in self.calendar:
            cur, ref = _shares(self.part_counts[c]), self.part_ref.get(c) or []
            value = psi(ref, cur) if cur and ref else 0.0
            parts[c] = {"psi": value, "ref": ref, "cur": cur,
                        "drifted": value > mon.threshold}
            if parts[c]["drifted"]:
                out["drifted"] = out["distribution_drifted"] = True
                reasons.append(f"{c} distribution psi {value:.3g} > {mon.threshold:g}")
        out.update(type="datetime", parts=parts, range_min=_date(self.lo),
                   range_max=_date(self.hi), min_date_cur=_date(out.get("min_cur")),
                   max_date_cur=_date(out.get("max_cur")))
        return out, reasons, null


def _shares(counts: np.ndarray) -> list[float]:
    total = int(counts.sum())
    return [float(c / total) for c in counts] if total else []


def _date(days: float | None) -> str | None:
    """An ISO date (UTC) from days since 1970-01-01, for reports."""
    if days is None or not math.isfinite(days):
        return None
    try:
        return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=days)).isoformat()[:19]
    except OverflowError:
        return None


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
