"""`spec init`'s evidence: one streamed pass over a CSV or Parquet file (the one dataset reader,
core/datasets, bounded memory) profiles every column; `infer` turns the profiles into a
proposed spec (spec_render.py writes it as commented YAML). Pure: no I/O beyond the stream.

Memory stays bounded whatever the file's size: each column keeps exact value counts only up to
TRACK_DISTINCT distinct values (past that, uniqueness is estimated per batch), min/max and a
few running sums, and the first SAMPLE_ROWS values (the leakage check's sample).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_kit.core.datasets import (
    csv_batches,
    is_number_type,
    normalise,
    parquet_batches,
    read_csv_header,
    to_float,
    to_text,
)
from mlops_kit.core.missing import NULL_VALUES
from mlops_kit.errors import ValidationError

__all__ = ["BOOLEAN_SPELLINGS", "ColumnProfile", "Decision", "Inferred", "infer",
           "profile_stream"]

TRACK_DISTINCT = 20_000  # exact counts up to this many distinct values per column
SAMPLE_ROWS = 20_000  # the leakage check's sample: the first rows
BOOLEAN_SPELLINGS = {"true": True, "false": False, "1": True, "0": False, "yes": True,
                     "no": False, "y": True, "n": False, "t": True, "f": False}
ISO_DATE = (r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?"
            r"(Z|[+-]\d{2}(:?\d{2})?)?)?$")


@dataclass
class ColumnProfile:
    """What one streamed pass learns about a column."""

    name: str
    rows: int = 0
    nulls: int = 0
    not_number: int = 0  # non-null values that are not finite numbers
    not_date: int = 0  # non-null text values that are not ISO 8601 dates
    native: str = ""  # "number", "bool", "datetime" (Parquet types) or "" (text)
    min: float = math.inf
    max: float = -math.inf
    integers: bool = True
    increasing: bool = True  # strictly, across the whole file (numbers only)
    decreasing: bool = True
    last: float | None = None
    counts: Counter | None = field(default_factory=Counter)  # None: past TRACK_DISTINCT
    batch_unique: list[float] = field(default_factory=list)  # distinct/non-null per batch
    text_chars: int = 0
    text_spaces: int = 0
    date_min: str | None = None
    date_max: str | None = None
    sample: list[Any] = field(default_factory=list)  # the first SAMPLE_ROWS values (text)

    @property
    def present(self) -> int:
        return self.rows - self.nulls

    @property
    def null_rate(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0

    @property
    def distinct(self) -> int:
        """Exact while counts are tracked; a lower bound (TRACK_DISTINCT + 1) past that."""
        return len(self.counts) if self.counts is not None else TRACK_DISTINCT + 1

    @property
    def unique_ratio(self) -> float:
        if self.present == 0:
            return 0.0
        if self.counts is not None:
            return len(self.counts) / self.present
        # past the cap: the smallest per-batch ratio (a batch of an id column is all unique)
        return min(self.batch_unique) if self.batch_unique else 1.0

    def examples(self, n: int = 3) -> list[str]:
        if self.counts is not None:
            return [str(k) for k, _ in self.counts.most_common(n)]
        return [str(v) for v in dict.fromkeys(v for v in self.sample if v is not None)][:n]

    @property
    def numeric(self) -> bool:
        return self.present > 0 and self.not_number == 0 and self.native in ("", "number")

    @property
    def boolean(self) -> bool:
        if self.native == "bool":
            return True
        if self.numeric or self.counts is None or not self.counts:
            return False
        lowered = {str(k).strip().lower() for k in self.counts}
        return lowered <= BOOLEAN_SPELLINGS.keys() and \
            len({BOOLEAN_SPELLINGS[v] for v in lowered}) == 2

    @property
    def datetime(self) -> bool:
        return self.native == "datetime" or (
            self.native == "" and self.present > 0 and not self.numeric and self.not_date == 0)

    @property
    def words(self) -> float:
        """Mean words per value (text columns)."""
        return 1 + self.text_spaces / self.present if self.present else 0.0


# -- the streamed pass ------------------------------------------------------------------------
def _batches(stream: BinaryIO, fmt: str, chunk_bytes: int,
             ) -> Iterator[tuple[list[str], dict[str, pa.Array]]]:
    if fmt == "csv":
        head, names, error = read_csv_header(stream)
        if error or names is None:
            raise ValidationError(error or "no header row", field="dataset")
        unique = list(dict.fromkeys(names))
        with closing(csv_batches(stream, head, names, unique, chunk_bytes,
                                 lambda row: "skip", NULL_VALUES)) as batches:
            for b in batches:
                yield unique, {n: b.column(n) for n in unique}
    elif fmt == "parquet":
        for cols in parquet_batches(stream, None, chunk_bytes):
            yield list(cols), cols
    else:
        raise ValidationError(f"unsupported data format {fmt!r}: use csv or parquet",
                              field="dataset")


def profile_stream(stream: BinaryIO, fmt: Literal["csv", "parquet"], *,
                   chunk_bytes: int = 8 << 20) -> tuple[list[ColumnProfile], list[str]]:
    """Profile every column of the file in one pass; (profiles, header names in order)."""
    profiles: dict[str, ColumnProfile] = {}
    header: list[str] = []
    try:
        for names, cols in _batches(stream, fmt, chunk_bytes):
            if not header:
                header = names
                profiles = {n: ColumnProfile(n) for n in names}
            applied = NULL_VALUES if fmt == "csv" else ()  # the CSV reader nulled them
            for n in names:
                _add(profiles[n], normalise(cols[n], NULL_VALUES, applied=applied))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ValidationError(f"cannot read {fmt} file: {str(exc).splitlines()[0]}",
                              field="dataset") from None
    if not header:
        raise ValidationError("the file has no columns", field="dataset")
    return [profiles[n] for n in header], header


def _add(p: ColumnProfile, arr: pa.Array) -> None:
    n = len(arr)
    nulls = arr.null_count
    p.rows += n
    p.nulls += nulls
    if n == nulls:
        _sample(p, [None] * n)
        return
    t = arr.type
    if pa.types.is_boolean(t):
        p.native = "bool"
    elif pa.types.is_timestamp(t) or pa.types.is_date(t):
        p.native = "datetime"
        arr = pc.cast(arr, pa.string()) if pa.types.is_date(t) else pc.strftime(arr)
    elif is_number_type(t):
        p.native = "number"
    if p.native in ("", "number") and p.not_number == 0:
        _numbers(p, arr)
    present = pc.drop_null(arr)
    _counts(p, present, n - nulls)
    if p.native == "" and p.not_number > 0:
        _text(p, present)
    if len(p.sample) < SAMPLE_ROWS:
        head = arr.slice(0, SAMPLE_ROWS - len(p.sample))
        _sample(p, head.to_pylist() if pa.types.is_string(head.type) else
                to_text(head)[0].to_pylist())


def _numbers(p: ColumnProfile, arr: pa.Array) -> None:
    if pa.types.is_string(arr.type):
        try:  # the fast path; to_float's per-value fallback only for what may still be numbers
            pc.cast(arr, pa.float64())
        except pa.ArrowInvalid:
            probe = to_float(arr.slice(0, 256))[1]
            if probe is not None and probe.any():
                p.not_number += int(probe.sum())
                return
    vals, bad = to_float(arr)
    if bad is not None and bad.any():
        p.not_number += int(bad.sum())
        return
    v = vals[~np.isnan(vals)]
    if not len(v):
        return
    p.min, p.max = min(p.min, float(v.min())), max(p.max, float(v.max()))
    p.integers = p.integers and bool(np.all(v == np.floor(v)))
    if p.increasing or p.decreasing:
        seq = v if p.last is None else np.concatenate([[p.last], v])
        d = np.diff(seq)
        p.increasing = p.increasing and bool(np.all(d > 0))
        p.decreasing = p.decreasing and bool(np.all(d < 0))
    p.last = float(v[-1])


def _counts(p: ColumnProfile, present: pa.Array, n_present: int) -> None:
    if p.counts is None:  # past the cap: only the batch's uniqueness
        distinct = pc.count_distinct(present).as_py()
        p.batch_unique.append(distinct / n_present if n_present else 1.0)
        return
    vc = pc.value_counts(present)
    p.batch_unique.append(len(vc) / n_present if n_present else 1.0)
    if len(vc) > TRACK_DISTINCT:
        p.counts = None  # a near-unique column: stop counting, estimate per batch
        return
    values = vc.field("values")
    if not pa.types.is_string(values.type):
        values = to_text(values)[0]  # numbers spelled as serving spells them
    for value, count in zip(values.to_pylist(), vc.field("counts").to_pylist(), strict=True):
        p.counts[value] += count
    if len(p.counts) > TRACK_DISTINCT:
        p.counts = None


def _text(p: ColumnProfile, present: pa.Array) -> None:
    p.text_chars += int(pc.sum(pc.utf8_length(present)).as_py() or 0)
    p.text_spaces += int(pc.sum(pc.count_substring(present, " ")).as_py() or 0)
    if p.not_date == 0:
        dates = pc.match_substring_regex(present, ISO_DATE)
        p.not_date += len(present) - int(pc.sum(dates).as_py() or 0)
        if p.not_date == 0:
            lo, hi = pc.min_max(present).values()
            p.date_min = min(filter(None, [p.date_min, lo.as_py()]))
            p.date_max = max(filter(None, [p.date_max, hi.as_py()]))


def _sample(p: ColumnProfile, values: list) -> None:
    room = SAMPLE_ROWS - len(p.sample)
    if room > 0:
        p.sample.extend(values[:room])


# -- decisions --------------------------------------------------------------------------------
Kind = Literal["numeric", "categorical", "boolean", "datetime", "text"]


@dataclass
class Decision:
    """One column's proposed role: a feature of `kind`, or left out with `reason`."""

    profile: ColumnProfile
    kind: Kind
    reason: str | None = None  # why it is not a feature (None: it is one)
    categories: list[str] | None = None
    min: float | None = None
    max: float | None = None


@dataclass
class Inferred:
    task: Literal["binary_classification", "multiclass_classification", "regression"]
    target: ColumnProfile
    classes: list[str]  # class labels, most frequent first (classification)
    positive_class: str | None
    columns: list[Decision]
    rows: int
    margin: float
    max_categories: int

    @property
    def features(self) -> list[Decision]:
        return [d for d in self.columns if d.reason is None]


def _task(target: ColumnProfile, max_classes: int) -> tuple[str, list[str]]:
    if target.counts is None or target.present == 0:
        if target.numeric:
            return "regression", []
        raise ValidationError(f"target {target.name!r} has no values or too many distinct "
                              "text values to be a class label", field=target.name)
    classes = [str(k) for k, _ in target.counts.most_common()]
    if target.numeric and (not target.integers or len(classes) > 20):
        return "regression", []
    if len(classes) < 2:
        raise ValidationError(f"target {target.name!r} has a single value {classes}: "
                              "nothing to learn", field=target.name)
    if len(classes) == 2:
        return "binary_classification", classes
    if len(classes) > max_classes:
        raise ValidationError(f"target {target.name!r} has {len(classes)} distinct text values:"
                              f" more than {max_classes} classes", field=target.name)
    return "multiclass_classification", classes


def _leaks(p: ColumnProfile, target: ColumnProfile, task: str) -> bool:
    """Does this column alone predict the target perfectly on the sample?"""
    pairs = [(x, y) for x, y in zip(p.sample, target.sample, strict=False)
             if x is not None and y is not None]
    if len(pairs) < 30:
        return False
    if p.numeric:
        xs = np.array([float(x) for x, _ in pairs])
        if task == "regression":
            ys = np.array([float(y) for _, y in pairs])
            if xs.std() == 0 or ys.std() == 0:
                return False
            return abs(float(np.corrcoef(xs, ys)[0, 1])) > 0.9999
        order = np.argsort(xs, kind="stable")
        ys_sorted = [pairs[i][1] for i in order]
        changes = sum(a != b for a, b in zip(ys_sorted, ys_sorted[1:], strict=False))
        return changes <= len(set(ys_sorted)) - 1  # classes separated by thresholds
    if task == "regression":
        return False
    seen: dict[Any, Any] = {}
    for x, y in pairs:
        if seen.setdefault(x, y) != y:
            return False
    return len(seen) <= len(pairs) // 2  # a near-unique column "predicts" trivially


def _range(p: ColumnProfile, margin: float) -> tuple[float, float]:
    pad = (p.max - p.min) * margin or abs(p.max) * margin or 1.0
    lo, hi = p.min - pad, p.max + pad
    if p.min >= 0 > lo:
        lo = 0.0  # a non-negative column stays non-negative
    if p.integers:
        return float(math.floor(lo)), float(math.ceil(hi))
    return _round(lo, up=False), _round(hi, up=True)


def _round(x: float, *, up: bool) -> float:
    """x to 4 significant digits, rounded outwards (the range only ever widens)."""
    if x == 0:
        return 0.0
    e = math.floor(math.log10(abs(x))) - 3
    v = (math.ceil if up else math.floor)(x / 10.0 ** e) * 10.0 ** e
    return float(f"{v:.{max(0, -e)}f}")


def _decide(p: ColumnProfile, target: ColumnProfile, task: str, *, margin: float,
            max_categories: int, types: set[str]) -> Decision:
    if p.present == 0:
        return Decision(p, "categorical", reason="empty: every value is missing")
    if p.null_rate >= 0.95:
        return Decision(p, "categorical", reason=f"almost all missing ({p.null_rate:.1%})")
    if p.distinct == 1:
        return Decision(p, "categorical", reason=f"constant ({p.examples(1)[0]!r})")
    if p.numeric and p.integers and (p.increasing or p.decreasing) and p.present == p.rows:
        return Decision(p, "numeric", reason="identifier-like: a monotonic integer key")
    if p.boolean:
        kind: Kind = "boolean"
    elif p.numeric:
        kind = "numeric"
    elif p.datetime:
        kind = "datetime"
    elif p.words >= 3 and p.distinct > max_categories:
        kind = "text"
    elif p.unique_ratio >= 0.95 and p.present >= 20:
        return Decision(p, "categorical",
                        reason=f"identifier-like: {p.unique_ratio:.0%} of values unique")
    else:
        kind = "categorical"
    if _leaks(p, target, task):
        return Decision(p, kind, reason="target leakage: predicts the target perfectly on a "
                                        f"sample of {min(p.rows, SAMPLE_ROWS)} rows")
    if kind not in types and kind != "boolean":
        return Decision(p, kind, reason=f"{kind}: not a feature type of this mlops-kit yet")
    d = Decision(p, kind)
    if kind == "numeric":
        d.min, d.max = _range(p, margin)
    elif kind in ("categorical", "boolean") and p.counts is not None:
        ranked = [str(k) for k, _ in p.counts.most_common()]
        d.categories = ranked if len(ranked) <= max_categories else None
    return d


def infer(profiles: list[ColumnProfile], target: str, *, types: set[str],
          margin: float = 0.1, max_categories: int = 30, max_classes: int = 100) -> Inferred:
    """The proposed spec's content. `types`: the feature types the spec accepts (a type the
    spec does not know yet is left out with that reason; a boolean falls back to a
    categorical)."""
    by_name = {p.name: p for p in profiles}
    if target not in by_name:
        import difflib

        close = difflib.get_close_matches(target, list(by_name), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else \
            f"; the columns are {list(by_name)[:20]}"
        raise ValidationError(f"target {target!r} is not a column of the file{hint}",
                              field="target")
    t = by_name[target]
    task, classes = _task(t, max_classes)
    positive = None
    if task == "binary_classification":
        counts = t.counts or Counter()
        positive = min(classes, key=lambda c: (counts[c], c))  # the minority class
    cols = [_decide(p, t, task, margin=margin, max_categories=max_categories, types=types)
            for p in profiles if p.name != target]
    return Inferred(task, t, classes, positive, cols, t.rows, margin,  # type: ignore[arg-type]
                    max_categories)

