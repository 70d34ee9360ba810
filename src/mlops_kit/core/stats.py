"""Profiles and drift statistics shared by validation (the reference profile) and monitoring.

numpy only: this runs in the light monitor function (no scipy, pandas or pyarrow). The p-values
use the classic asymptotic approximations (Kolmogorov distribution for KS, Wilson-Hilferty for
chi-square), which are accurate for the sample sizes monitoring sees (tens of rows and up).

Profile entry shapes (produced by core.validation and build_prediction_profile):
  numeric:     {"type": "numeric", "count", "null_rate", "mean", "std", "min", "max",
                "edges": [interior cut points], "freqs": [len(edges)+1 shares], "sample": [...]}
  categorical: {"type": "categorical", "null_rate", "freqs": {value: share}}
  text terms (added to a text feature's entry at training, under "terms"; term_profile):
               {"vocabulary": [the model's words], "top": {word: share of tokens},
                "oov_rate": share of tokens not in the vocabulary, "docs", "tokens"}
Bins are (-inf, e0], (e0, e1], ..., (e_last, inf).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

# Profiles of high-cardinality columns keep the top values and lump the rest here.
OTHER_CATEGORY = "__other__"


NEW_CATEGORY_SHARE = 0.05  # new categories above this share of rows mean drift


KS_P_VALUE = 0.01


KS_MIN_STAT = 0.1


JS_THRESHOLD = 0.1


CHI2_P_VALUE = 0.01


CHI2_MIN_EFFECT = 0.1  # Cramer's V: large samples make tiny differences "significant"


PROFILE_SAMPLE = 1000


TOP_TERMS = 50  # the training words whose shares drift compares (top-term shift)


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


def numeric_profile_of(*, count: int, null_rate: float, mean: float, std: float, lo: float,
                       hi: float, sample: np.ndarray) -> dict:
    """The one shape of a numeric reference profile, from moments and a uniform sample (the
    validator streams them; numeric_profile computes them from an array)."""
    edges = quantile_edges(sample)
    return {
        "type": "numeric",
        "count": int(count),
        "null_rate": float(null_rate),
        "mean": float(mean) if count else 0.0,
        "std": float(std) if count else 0.0,
        "min": float(lo) if count else 0.0,
        "max": float(hi) if count else 0.0,
        "edges": edges,
        "freqs": numeric_freqs(sample, edges) if count else [],
        "sample": [float(x) for x in sample[:PROFILE_SAMPLE]],
    }


def numeric_profile(values: Sequence | np.ndarray, *, seed: int = 0) -> dict:
    arr = to_float_array(values)
    good = arr[~np.isnan(arr)]
    reservoir = Reservoir(max(PROFILE_SAMPLE, 1), seed)
    reservoir.offer(good)
    return numeric_profile_of(
        count=good.size, null_rate=1 - good.size / arr.size if arr.size else 0.0,
        mean=good.mean() if good.size else 0.0, std=good.std() if good.size else 0.0,
        lo=good.min() if good.size else 0.0, hi=good.max() if good.size else 0.0,
        sample=reservoir.sample())


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


# -- text terms ---------------------------------------------------------------------------
class TermCounts:
    """Token statistics of tokenised texts against a vocabulary: how many tokens, how many
    not in the vocabulary (out of dictionary), and the counts of the tracked words. Texts with
    no token (missing, empty) count for nothing: the missing rate is judged on its own."""

    def __init__(self, vocabulary: Collection[str], tracked: Collection[str] | None = None
                 ) -> None:
        self.vocabulary = frozenset(vocabulary)
        self.tracked = None if tracked is None else frozenset(tracked)
        self.docs = self.tokens = self.oov = 0
        self.counts: dict[str, int] = {}

    def add(self, docs: Iterable[Sequence[str]]) -> None:
        flat: list[str] = []
        n = 0
        for tokens in docs:  # one flat list of str: no list per text for the GC to walk
            if tokens:
                n += 1
                flat.extend(tokens)
        self.add_words(Counter(flat), n)  # counted in C

    def add_words(self, words: Mapping[str, int], docs: int) -> None:
        """Word counts of `docs` texts with at least one word (then once per distinct word)."""
        self.docs += docs
        self.tokens += sum(words.values())
        vocab, tracked, counts = self.vocabulary, self.tracked, self.counts
        for t, c in words.items():
            if t not in vocab:
                self.oov += c
            elif tracked is None or t in tracked:
                counts[t] = counts.get(t, 0) + c

    @property
    def oov_rate(self) -> float:
        return self.oov / self.tokens if self.tokens else 0.0

    def shares(self, terms: Iterable[str]) -> dict[str, float]:
        """Each term's share of all tokens, and the rest (other words, out-of-dictionary ones
        included) as OTHER_CATEGORY: a distribution that sums to 1 (empty without tokens)."""
        if not self.tokens:
            return {}
        out = {t: self.counts.get(t, 0) / self.tokens for t in terms}
        out[OTHER_CATEGORY] = max(0.0, 1.0 - sum(out.values()))
        return out


def term_profile(vocabulary: Collection[str], docs: Iterable[Sequence[str]],
                 top: int = TOP_TERMS) -> dict:
    """The reference of a text feature's words: the model's vocabulary (its single words), the
    share of tokens outside it on `docs`, and the `top` most frequent vocabulary words with
    their shares of all tokens (ties broken alphabetically)."""
    counts = TermCounts(vocabulary)
    counts.add(docs)
    ranked = sorted(counts.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {"vocabulary": sorted(counts.vocabulary), "docs": counts.docs,
            "tokens": counts.tokens, "oov_rate": counts.oov_rate,
            "top": counts.shares(t for t, _ in ranked)}


def _clean(values: Sequence | np.ndarray) -> np.ndarray:
    arr = to_float_array(values)
    return arr[np.isfinite(arr)]


class Reservoir:
    """A bounded uniform sample of a stream, by random priorities: keep the `size` values with
    the smallest keys ever drawn. Vectorised per chunk; seed-stable (one key per value offered);
    holds copies, never views of a caller's batch. Used for the reference profile (validation)
    and for the live window (monitoring)."""

    def __init__(self, size: int, seed: int | Sequence[int] = 0) -> None:
        self.size = size
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self._vals = np.empty(0)
        self._keys = np.empty(0)
        self._max = 1.0

    def offer(self, values: np.ndarray) -> None:
        self.seen += values.size
        keys = self._rng.random(values.size)  # drawn for every value: the sample is seed-stable
        if self._keys.size >= self.size:  # full: only smaller keys can enter
            enter = keys < self._max
            if not enter.any():
                return
            keys, values = keys[enter], values[enter]
        keys = np.concatenate([self._keys, keys])
        pool = np.concatenate([self._vals, values.astype(np.float64, copy=True)])
        if keys.size > self.size:
            keep = np.argpartition(keys, self.size)[: self.size]
            keys, pool = keys[keep], pool[keep]
        self._keys, self._vals = keys, pool
        self._max = float(keys.max()) if keys.size >= self.size else 1.0

    def sample(self) -> np.ndarray:
        """The sample in random (key) order, stable for a seed."""
        return self._vals[np.argsort(self._keys)]

