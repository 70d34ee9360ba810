"""The request validator's rules applied column-wise to a batch of file rows: one verdict per
row and the ONNX feed, without building a Python dict per row.

The rules are the request path's (features.records_to_inputs, core/serving): a record is what
a JSON request would carry for the row (every feature present; a number, a string or None), so
a row is refused here exactly when an HTTP request holding that record is refused. Numeric and
categorical columns are checked in numpy / Arrow (nulls, finiteness, min / max, categories,
length, `unknown: other`); booleans, text and datetimes go value by value through the request
path's own coerce_* functions. A row the columns flag is then given to the request path itself
(records_to_inputs on that one record): its message is the rejection, word for word, and should
the column check ever be stricter than the request path, the request path's verdict and
encoding win. So this module can be faster than the per-row path, never laxer and never
worded differently (tests/unit/scoring/test_checks.py compares the two on generated rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_kit.core.datasets import normalise, to_float, to_text
from mlops_kit.core.features import (
    MISSING_CATEGORY,
    OTHER_CATEGORY,
    coerce_boolean,
    coerce_datetime,
    coerce_text,
    records_to_inputs,
)
from mlops_kit.core.missing import missing_markers
from mlops_kit.core.spec_light import (  # the feature kinds of either reading of a spec
    BooleanFeature,
    CategoricalFeature,
    DatetimeFeature,
    NumericFeature,
    TextFeature,
)
from mlops_kit.errors import ValidationError

if TYPE_CHECKING:
    from mlops_kit.core.features import AnySpec as ModelSpec

MAX_CATEGORY = 256  # features.coerce_category's limit


@dataclass
class Checked:
    """One batch's verdict: the feed of every row (a refused row's values are placeholders),
    which rows are accepted, and the refused ones as (row, column, message). `codes`: each
    categorical feature's values as small integers (its dictionary's indices), the keys the
    engine sorts rows by before a run (core/scoring/engine.py: sorted_run)."""

    feed: dict[str, np.ndarray]
    accepted: np.ndarray
    rejects: list[tuple[int, str | None, str]]
    codes: dict[str, np.ndarray] = field(default_factory=dict)


def _object_column(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string column (no nulls) as the [N, 1] object array onnxruntime takes: through a
    dictionary, so N rows of a few levels share a few Python strings; and the dictionary's
    indices (the rows' codes)."""
    enc = pc.dictionary_encode(text).combine_chunks() if isinstance(text, pa.ChunkedArray) \
        else pc.dictionary_encode(text)
    levels = np.array(enc.dictionary.to_pylist(), dtype=object)
    idx = enc.indices.to_numpy(zero_copy_only=False)
    return levels[idx].reshape(-1, 1), idx


def _mask(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


class ColumnCheck:
    """Compiled once per model version: check(columns, n) -> Checked."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.features = list(spec.features)
        self.markers = {f.name: missing_markers(f.categories if isinstance(
            f, CategoricalFeature) else None) for f in self.features}
        self.allowed = {f.name: pa.array(f.categories, pa.string()) for f in self.features
                        if isinstance(f, CategoricalFeature) and f.categories is not None}

    def check(self, cols: dict[str, pa.Array], n: int) -> Checked:
        feed: dict[str, np.ndarray] = {}
        codes: dict[str, np.ndarray] = {}
        values: dict[str, Any] = {}  # per feature: what a request record would carry
        typed_bad: list[tuple[str, str, np.ndarray]] = []  # not even of the feature's type
        flagged = np.zeros(n, dtype=bool)  # refused by a rule: the request path words it
        for f in self.features:
            arr = normalise(cols[f.name], self.markers[f.name])
            if isinstance(f, NumericFeature):
                vals, bad = to_float(arr)
                values[f.name] = vals
                missing = np.isnan(vals)
                if not f.nullable:
                    flagged |= missing
                if f.min is not None:
                    flagged |= vals < f.min
                if f.max is not None:
                    flagged |= vals > f.max
                with np.errstate(over="ignore"):  # beyond float32: inf, as the request path
                    feed[f.name] = vals.astype(np.float32).reshape(-1, 1)
            elif isinstance(f, CategoricalFeature):
                text, bad = to_text(arr)
                values[f.name] = text
                missing = _mask(pc.or_kleene(text.is_null(), pc.equal(text, "")))
                if not f.nullable:
                    flagged |= missing
                flagged |= _mask(pc.greater(pc.utf8_length(text), MAX_CATEGORY))
                filled = pc.if_else(pa.array(missing), MISSING_CATEGORY, text)
                if f.name in self.allowed:
                    unknown = ~missing & ~_mask(pc.is_in(text, value_set=self.allowed[f.name]))
                    if f.unknown == "other":
                        filled = pc.if_else(pa.array(unknown), OTHER_CATEGORY, filled)
                    else:
                        flagged |= unknown
                feed[f.name], codes[f.name] = _object_column(filled)
            else:  # booleans, text, datetimes: the request path's coercion, value by value
                text, bad = to_text(arr)
                values[f.name] = text
                feed[f.name], rule_bad = _coerced(f, text.to_pylist())
                flagged |= rule_bad
            if bad is not None:
                typed_bad.append((f.name, "number" if isinstance(f, NumericFeature) else
                                  "category" if isinstance(f, CategoricalFeature) else "value",
                                  bad))
        for name in self.spec.ids:  # not read from the file: as a record without them
            feed[name] = np.full((n, 1), MISSING_CATEGORY, dtype=object)
        accepted = ~flagged
        refused: dict[int, tuple[str | None, str]] = {}
        typed = np.zeros(n, dtype=bool)
        for name, kind, bad in typed_bad:  # the first such feature names the row
            for i in np.flatnonzero(bad & ~typed).tolist():
                refused[i] = (name, f"{name}: expected a {kind}")
            typed |= bad
        accepted &= ~typed
        for i in np.flatnonzero(flagged & ~typed).tolist():
            record = {f.name: _value(values[f.name], i) for f in self.features}
            try:
                one = records_to_inputs(self.spec, [record])
            except ValidationError as exc:
                message = str(exc.message).removeprefix("instances[0]: ")
                refused[i] = (exc.field, message.removeprefix("instances[0]."))
                continue
            for k, v in one.items():  # stricter than the request path: its verdict wins
                feed[k][i] = v[0]
            accepted[i] = True
        return Checked(feed, accepted, sorted((i, c, m) for i, (c, m) in refused.items()),
                       codes)


def _value(col: Any, i: int) -> Any:
    if isinstance(col, np.ndarray):
        v = float(col[i])
        return None if v != v else v
    return col[i].as_py()


def _coerced(f: Any, vals: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """A boolean, text or datetime column through the request path's coerce_* (flagged rows
    get a placeholder)."""
    bad = np.zeros(len(vals), dtype=bool)
    out: list[Any] = []
    for i, v in enumerate(vals):
        try:
            if isinstance(f, BooleanFeature):
                out.append(coerce_boolean(f.name, v, f, i))
            elif isinstance(f, DatetimeFeature):
                out.append(coerce_datetime(f.name, v, f, i))
            else:
                assert isinstance(f, TextFeature)
                out.append(coerce_text(f.name, v, f, i))
        except ValidationError:
            bad[i] = True
            out.append("" if isinstance(f, TextFeature) else np.nan)
    if isinstance(f, TextFeature):
        return np.array(out, dtype=object).reshape(-1, 1), bad
    return np.asarray(out, dtype=np.float32).reshape(-1, 1), bad
