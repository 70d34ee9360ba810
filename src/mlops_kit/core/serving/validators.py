"""A validator compiled once per loaded model for the warm path's common request: a few records,
each a dict holding exactly the spec's features with plain, valid values.

It answers only when it is sure: anything else (a missing or unknown field, a string where a
number goes, a value out of range, NaN, a bool, ...) returns None and the caller runs the exact
per-value path (features.records_to_inputs), which accepts or rejects with the message naming
the field. So the rules live in one place and this module can only be faster, never laxer:
records it accepts are records the exact path accepts, encoded identically.

One record of 7 features: ~2 µs here, ~12 µs through the exact path (4 numeric + 3 categorical;
tuple loops over precomputed bounds, one float32 array for all numeric columns)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_kit.core.features import MISSING_CATEGORY
from mlops_kit.core.spec_light import CategoricalFeature, NumericFeature

if TYPE_CHECKING:  # either reading of a spec (spec_light: the serve function's, no pydantic)
    from mlops_kit.core.features import AnySpec as ModelSpec

FLOAT32_MAX = 3.0e38  # beyond it float32 overflows: the exact path decides


class RecordValidator:
    def __init__(self, spec: ModelSpec) -> None:
        self.names = tuple(spec.feature_names)
        self.keys = frozenset(self.names)
        numeric, categorical = [], []
        # booleans and text: the exact path only (features.records_to_inputs). A record that
        # carries an id column has other keys than the features: the exact path too.
        self.disabled = any(
            not isinstance(f, (CategoricalFeature, NumericFeature)) for f in spec.features)
        for f in spec.features:
            if not isinstance(f, (CategoricalFeature, NumericFeature)):
                continue
            if isinstance(f, CategoricalFeature):
                allowed = frozenset(f.categories) if f.categories is not None else None
                categorical.append((f.name, allowed, f.nullable))
            else:
                lo = -FLOAT32_MAX if f.min is None else max(float(f.min), -FLOAT32_MAX)
                hi = FLOAT32_MAX if f.max is None else min(float(f.max), FLOAT32_MAX)
                numeric.append((f.name, lo, hi, f.nullable))
        self.numeric = tuple(numeric)
        self.categorical = tuple(categorical)
        self.numeric_names = tuple(n for n, *_ in numeric)
        self.categorical_names = tuple(n for n, *_ in categorical)

    def feed(self, records: list[Any]) -> dict[str, np.ndarray] | None:
        """The ONNX feed for records the exact path would accept unchanged, else None."""
        if self.disabled:
            return None
        keys, nan = self.keys, math.nan
        nums: list[list[float]] = []
        cats: list[list[str]] = []
        for rec in records:
            if type(rec) is not dict or rec.keys() != keys:
                return None
            row = []
            for name, lo, hi, nullable in self.numeric:
                v = rec[name]
                t = type(v)
                if t is float:
                    if not lo <= v <= hi:  # NaN fails too
                        return None
                elif t is int:
                    if not lo <= v <= hi:
                        return None
                    v = float(v)  # as the exact path converts: int -> float -> float32
                elif v is None and nullable:
                    v = nan
                else:
                    return None
                row.append(v)
            nums.append(row)
            crow = []
            for name, allowed, nullable in self.categorical:
                v = rec[name]
                if type(v) is str and v and len(v) <= 256:
                    if allowed is not None and v not in allowed:
                        return None
                elif (v is None or v == "") and nullable:
                    v = MISSING_CATEGORY
                else:
                    return None
                crow.append(v)
            cats.append(crow)
        n = len(records)
        if n == 1:  # the common request: [k] arrays, no transpose
            nums_t: Any = nums[0]
            cats_t: Any = cats[0]
        else:  # one C-contiguous row per feature
            nums_t, cats_t = list(zip(*nums, strict=True)), list(zip(*cats, strict=True))
        feed: dict[str, np.ndarray] = {}
        # zip(strict=False): one array row per name by construction (strict costs ~0.6 µs
        # per zip over a numpy array, whose exhaustion check raises StopIteration)
        if self.numeric:  # Python floats -> float32, as columns_to_inputs converts them
            feed.update(zip(self.numeric_names,
                            np.array(nums_t, dtype=np.float32).reshape(-1, n, 1), strict=False))
        if self.categorical:
            feed.update(zip(self.categorical_names,
                            np.array(cats_t, dtype=object).reshape(-1, n, 1), strict=False))
        return feed
