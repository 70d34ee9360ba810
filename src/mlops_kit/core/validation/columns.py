"""Per-column state while a dataset streams through validation: rule counters, and the
statistics of the reference profile (Chan mean/variance, min/max, a bounded reservoir sample,
category counts capped at TRACKED_CATEGORIES). Nothing here grows with the number of rows."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_kit.core.datasets import class_labels
from mlops_kit.core.metrics import label_key, unambiguous_binary
from mlops_kit.core.spec import (
    BooleanFeature,
    CategoricalFeature,
    DatetimeFeature,
    ModelSpec,
    NumericFeature,
    TextFeature,
)
from mlops_kit.core.stats import OTHER_CATEGORY, Reservoir, numeric_profile_of
from mlops_kit.core.validation.rules import (
    PROFILE_CATEGORIES,
    TRACKED_CATEGORIES,
    Rule,
    fmt_bound,
)


class Column:
    """Per-column state across batches: rule counters plus profile statistics."""

    # set by make_column from the spec
    encoding: Rule
    range_rule: Rule | None
    cat_rule: Rule | None
    feature: (NumericFeature | CategoricalFeature | BooleanFeature | TextFeature
              | DatetimeFeature | None)

    def __init__(
        self,
        name: str,
        kind: str,
        nullable: bool,
        spec: ModelSpec,
        seed: int,
        sample_size: int,
        is_target: bool = False,
    ) -> None:
        self.name, self.kind, self.nullable, self.is_target = name, kind, nullable, is_target
        self.nulls = 0
        self.rules: dict[str, Rule] = {}
        n = name
        if kind == "numeric":
            self.rules["type"] = Rule(
                "type",
                n,
                lambda c: f"{n}: {c} values are not finite numbers" if c else f"{n}: all values are numbers",
            )
            self.n, self.mean, self.m2 = 0, 0.0, 0.0
            self.lo, self.hi = math.inf, -math.inf
            self.sample_size = sample_size
            self.reservoir = Reservoir(sample_size, [seed, len(name)])
        else:
            self.rules["type"] = Rule(
                "type",
                n,
                lambda c: f"{n}: {c} values are not text" if c else f"{n}: all values are text",
            )
            self.counts: dict[str, int] = {}
        if is_target:
            self.rules["target"] = Rule(
                "target",
                n,
                lambda c: (
                    f"{n}: {c} rows have no usable target value" if c else f"{n}: every row has a target"
                ),
            )
        elif not nullable:
            self.rules["nullable"] = Rule(
                "nullable",
                n,
                lambda c: (
                    f"{n}: {c} missing values but the column is not nullable"
                    if c
                    else f"{n}: no missing values"
                ),
            )

    # numeric ---------------------------------------------------------------------------
    def add_numeric(
        self,
        vals: np.ndarray,
        bad: np.ndarray | None,
        text: Callable,
        off: int,
        lim: int,
        range_rule: Rule | None,
        lo: float | None,
        hi: float | None,
    ) -> None:
        nan = np.isnan(vals)
        if bad is not None:
            self.rules["type"].add(bad, text, off, lim)
            if self.is_target:
                self.rules["target"].add(bad, text, off, lim)
            nulls = nan & ~bad
        else:
            nulls = nan
        self.nulls += int(nulls.sum())
        null_rule = self.rules.get("target") or self.rules.get("nullable")
        if null_rule is not None:
            null_rule.add(nulls, lambda i: None, off, lim)
        if range_rule is not None:
            outside = np.zeros(vals.shape, dtype=bool)
            if lo is not None:
                outside |= vals < lo
            if hi is not None:
                outside |= vals > hi
            range_rule.add(outside, text, off, lim)
            nan = nan | outside  # the profile describes valid values only
        good = vals[~nan]
        if not good.size:
            return
        # Chan et al. parallel mean/variance: exact and stable across batches.
        n_b, mean_b = good.size, float(good.mean())
        m2_b = float(((good - mean_b) ** 2).sum())
        total = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / total
        self.m2 += m2_b + delta * delta * self.n * n_b / total
        self.n = total
        self.lo, self.hi = min(self.lo, float(good.min())), max(self.hi, float(good.max()))
        self.reservoir.offer(good)

    # categorical -------------------------------------------------------------------------
    def add_text(
        self,
        text: pa.Array,
        off: int,
        lim: int,
        cat_rule: Rule | None,
        categories: list[str] | None,
    ) -> None:
        nulls = text.is_null().to_numpy(zero_copy_only=False)
        self.nulls += int(nulls.sum())
        null_rule = self.rules.get("target") or self.rules.get("nullable")
        if null_rule is not None:
            null_rule.add(nulls, lambda i: None, off, lim)
        if cat_rule is not None and categories is not None:
            ok = pc.is_in(text, value_set=pa.array(categories, pa.string())).to_numpy(zero_copy_only=False)
            cat_rule.add(~ok & ~nulls, lambda i: text[i].as_py(), off, lim)
        vc = pc.value_counts(text.drop_null())
        for value, count in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
            if value in self.counts or len(self.counts) < TRACKED_CATEGORIES:
                self.counts[value] = self.counts.get(value, 0) + count
            else:
                self.counts[OTHER_CATEGORY] = self.counts.get(OTHER_CATEGORY, 0) + count

    def profile(self, rows: int) -> dict:
        null_rate = self.nulls / rows if rows else 0.0
        if self.kind == "categorical":
            total = sum(self.counts.values())
            top = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
            kept, rest = top[:PROFILE_CATEGORIES], sum(c for _, c in top[PROFILE_CATEGORIES:])
            freqs = {k: c / total for k, c in kept} if total else {}
            if rest:
                freqs[OTHER_CATEGORY] = freqs.get(OTHER_CATEGORY, 0.0) + rest / total
            return {"type": "categorical", "null_rate": null_rate, "freqs": freqs}
        return numeric_profile_of(
            count=self.n, null_rate=null_rate, mean=self.mean,
            std=math.sqrt(self.m2 / self.n) if self.n else 0.0, lo=self.lo, hi=self.hi,
            sample=self.reservoir.sample())  # random order, seed-stable


def make_column(
    f: NumericFeature | CategoricalFeature | BooleanFeature | TextFeature | DatetimeFeature
    | None,
    spec: ModelSpec, seed: int,
    sample_size: int,
) -> Column:
    """The column for feature f, or for the target when f is None, with its spec rules."""
    target_kind = "categorical" if spec.task.is_classification else "numeric"
    name = f.name if f else spec.target
    # a boolean is profiled as 1.0 / 0.0, a text as its words per value (features.text_words):
    # numbers, as serving captures them, so drift compares like with like
    kind = target_kind if f is None else (
        "categorical" if isinstance(f, CategoricalFeature) else "numeric")
    col = Column(name, kind, f.nullable if f else False, spec, seed, sample_size, f is None)
    col.encoding = Rule("parse", name, lambda c, n=name: f"{n}: {c} values are not valid UTF-8")
    col.encoding.failed = None
    col.range_rule = col.cat_rule = None
    if isinstance(f, NumericFeature) and (f.min is not None or f.max is not None):
        bounds = f"[{fmt_bound(f.min)}, {fmt_bound(f.max) if f.max is not None else 'inf'}]"
        col.range_rule = Rule(
            "range",
            name,
            lambda c, n=name, b=bounds: (
                f"{n}: {c} values outside {b}" if c else f"{n}: all values within {b}"
            ),
        )
    if isinstance(f, CategoricalFeature) and f.categories is not None and f.unknown != "other":
        col.cat_rule = Rule(
            "category",
            name,
            lambda c, n=name, cats=f.categories: (
                f"{n}: {c} values not in the allowed categories {cats}"
                if c
                else f"{n}: all values in the allowed categories"
            ),
        )
    col.feature = f
    return col


# -- whole-file rules -----------------------------------------------------------------------
def null_fraction(col: Column, rows: int, spec: ModelSpec) -> Rule:
    cap = spec.validation.max_null_fraction
    share = col.nulls / rows if rows else 0.0
    r = Rule(
        "null_fraction",
        col.name,
        lambda c: (
            f"{col.name}: {share:.1%} missing, above validation.max_null_fraction {cap:.1%}"
            if share > cap
            else f"{col.name}: {share:.1%} missing (max {cap:.1%})"
        ),
    )
    r.count = col.nulls if share > cap else 0
    return r


def class_counts(col: Column) -> dict:
    """Target counts by class as training will see them ("1" and "1.0" are the class 1)."""
    labels = class_labels(k for k in col.counts if k != OTHER_CATEGORY)
    out: dict = {}
    for text, count in col.counts.items():
        key = labels.get(text, text)
        out[key] = out.get(key, 0) + count
    return out


def task_classes(col: Column, spec: ModelSpec) -> Rule:
    """A binary task needs exactly two classes: a third one is a data error, caught here."""
    classes = sorted(class_counts(col), key=str)
    name, task = col.name, spec.task.value
    wrong = spec.task.value == "binary_classification" and len(classes) > 2
    r = Rule("classes", name, lambda c: (
        f"{name}: {task} needs exactly 2 classes, found {len(classes)}: {classes[:10]}" if wrong
        else f"{name}: {len(classes)} classes for {task}"))
    r.count = len(classes) - 2 if wrong else 0
    r.rows_final = True  # examples name classes, not rows
    if wrong:
        counts = class_counts(col)
        r.examples = [{"row": None, "value": f"{k!r}: {counts[k]} rows"} for k in classes[:10]]
    return r


def positive_class(col: Column, spec: ModelSpec) -> Rule:
    """A binary task whose labels are not 0/1 or false/true must say which class is positive:
    sorted order would pick one silently (and F1 would be the other class's)."""
    classes = sorted(class_counts(col), key=str)
    name, pos = col.name, spec.positive_class
    if len(classes) != 2:
        problem = None  # task_classes / class_balance say what is wrong
    elif pos is None:
        problem = None if unambiguous_binary(classes) else (
            f"{name}: the labels are {[str(c) for c in classes]}, not 0/1 or false/true: set "
            f"positive_class in the spec to the class to detect (one of {[str(c) for c in classes]})")
    elif label_key(pos) not in {label_key(c) for c in classes}:
        problem = (f"{name}: positive_class {pos!r} is not one of the labels found "
                   f"{[str(c) for c in classes]}")
    else:
        problem = None
    ok = (f"{name}: positive class {pos!r}" if pos is not None
          else f"{name}: positive class is the label 1/true")
    r = Rule("positive_class", name, lambda c: problem or ok)
    r.count = 1 if problem else 0
    r.rows_final = True
    if problem:
        counts = class_counts(col)
        r.examples = [{"row": None, "value": f"{k!r}: {counts[k]} rows"} for k in classes]
    return r


def class_balance(col: Column, spec: ModelSpec) -> Rule:
    counts = class_counts(col)
    total = sum(counts.values())
    floor = spec.validation.min_class_fraction
    shares = {k: v / total for k, v in counts.items()} if total else {}
    small = sorted((k for k, s in shares.items() if s < floor), key=str)
    name = col.name
    if len(shares) < 2:
        msg = (f"{name}: needs at least 2 classes, found {len(shares)} "
               f"{sorted(shares, key=str)[:5]}")
        count = 1
    elif small:
        msg = (
            f"{name}: classes "
            + ", ".join(f"{k!r} ({shares[k]:.1%})" for k in small[:10])
            + f" are below validation.min_class_fraction {floor:.1%}"
        )
        count = len(small)
    else:
        msg = f"{name}: {len(shares)} classes, smallest {min(shares.values()):.1%}"
        count = 0
    r = Rule("class_balance", name, lambda c: msg)
    r.count = count
    return r
