"""Readers for validation: the one dataset reader (core/datasets.py) streamed into the
validator: CSV (ragged rows skipped and located) or Parquet (row-group batches), each column batch
normalised (any Arrow type, one meaning of missing) to float64 or text and counted.

Memory does not grow with the file (see core/datasets.py: bounded CSV read-ahead, Parquet read
without pre-buffering).
"""

from __future__ import annotations

import csv
import io
from contextlib import closing
from typing import BinaryIO, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_kit.core.datasets import (
    csv_batches,
    is_text_type,
    label_text,
    missing_markers,
    normalise,
    parquet_batches,
    read_csv_header,
    shared_markers,
    to_boolean,
    to_float,
    to_text,
)
from mlops_kit.core.features import datetime_days, text_words
from mlops_kit.core.spec import (
    BooleanFeature,
    CategoricalFeature,
    DatetimeFeature,
    NumericFeature,
    TextFeature,
)
from mlops_kit.core.validation.columns import Column
from mlops_kit.core.validation.rules import ARROW_ERRORS, Rule


class Validator(Protocol):
    """What a reader feeds (implemented by validator.Validator; a Protocol keeps the readers
    below the validator in the import graph)."""

    lim: int
    applied: list[str]  # the missing tokens the CSV reader nulls itself (shared_markers)
    parse: Rule
    ragged_rows: list[int]
    cols: dict[str, Column]

    def check_header(self, names: list[str]) -> bool: ...
    def add_batch(self, columns: dict[str, pa.Array], n: int) -> None: ...
    def fail_parse(self, message: str) -> None: ...


def _categories(col: Column) -> list[str] | None:
    return col.feature.categories if isinstance(col.feature, CategoricalFeature) else None


def add_column(col: Column, arr: pa.Array, n: int, off: int, lim: int, fmt: str,
               applied: list[str] | None = None) -> None:
    """Normalise one batch of one column (any Arrow type) and count it into col."""
    num = col.feature if isinstance(col.feature, NumericFeature) else None
    cats = _categories(col)

    def invalid_utf8(bad: np.ndarray, decoded: list) -> None:
        col.encoding.add(bad, lambda i: decoded[i], off, lim)

    arr = normalise(arr, missing_markers(cats), invalid_utf8, applied or ())
    if col.kind == "numeric":
        if isinstance(col.feature, BooleanFeature):
            vals, bad = to_boolean(arr, col.feature.true_values, col.feature.false_values)
        elif isinstance(col.feature, DatetimeFeature):
            text, bad = to_text(arr)
            vals, not_date = datetime_days(text.to_pylist(), col.feature.format)
            bad = not_date if bad is None else (bad if not_date is None else bad | not_date)
        elif isinstance(col.feature, TextFeature):
            text, bad = to_text(arr)
            vals = text_words(text.to_pylist())
            nulls = vals != vals  # no words: missing, as serving's empty text
            if nulls.any():
                arr = pc.if_else(pa.array(nulls), pa.scalar(None, text.type), text)
        else:
            vals, bad = to_float(arr)
        if is_text_type(arr.type):
            shown = lambda i, a=arr: a[i].as_py()  # noqa: E731
        else:  # numbers (an infinity) and other types are shown as text, never as a float
            shown = lambda i, a=arr: str(a[i].as_py())[:100]  # noqa: E731
        col.add_numeric(vals, bad, shown, off, lim, col.range_rule,
                        num.min if num else None, num.max if num else None)
    else:
        source = arr
        arr, bad = label_text(arr) if col.is_target else to_text(arr)
        if bad is not None:
            col.rules["type"].add(bad, lambda i, a=source: str(a[i].as_py())[:100], off, lim)
        col.add_text(arr, off, lim, col.cat_rule, cats)


# -- readers --------------------------------------------------------------------------------
def _locate_ragged(stream: BinaryIO, start: int, width: int) -> list[int]:
    """Second pass (seekable files with ragged rows only): which data rows were ragged."""
    stream.seek(start)
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
    rows, n = [], 0
    reader = csv.reader(text)
    next(reader, None)
    for rec in reader:
        if not rec or rec == [""]:
            continue
        n += 1
        if len(rec) != width:
            rows.append(n)
    text.detach()
    return rows


def scan_csv(v: Validator, stream: BinaryIO, chunk_bytes: int) -> bool:
    seekable = getattr(stream, "seekable", None)
    start = stream.tell() if seekable is not None and seekable() else None
    head, names, error = read_csv_header(stream)
    if error or names is None:
        v.fail_parse(error or "no header row")
        return False
    if not v.check_header(names):
        return False
    wanted = list(v.cols)
    v.applied = shared_markers(missing_markers(_categories(c)) for c in v.cols.values())
    ragged: list[tuple[int, int, str]] = []

    def on_invalid(row) -> str:
        ragged.append((row.expected_columns, row.actual_columns, row.text))
        return "skip"

    try:
        with closing(csv_batches(stream, head, names, wanted, chunk_bytes, on_invalid,
                                 v.applied or [""])) as rd:
            for batch in rd:
                v.add_batch({n: batch.column(n) for n in wanted}, batch.num_rows)
    finally:
        if ragged:
            _report_ragged(v, stream, start, len(names), ragged)
    return True


def _report_ragged(v: Validator, stream: BinaryIO, start: int | None, width: int, ragged: list) -> None:
    rows: list[int | None] = [None] * len(ragged)
    if start is not None:
        try:
            found = _locate_ragged(stream, start, width)
            if len(found) == len(ragged):
                rows = list(found)
                v.ragged_rows = found
        except ARROW_ERRORS + (csv.Error,):
            pass
    p = v.parse
    p.count = len(ragged)
    p.describe = lambda c: (
        f"{c} rows have the wrong number of fields (expected {width}); they were "
        "skipped"
        + (
            ""
            if v.ragged_rows
            else "; the stream is not seekable, so row numbers in this report count well-formed rows only"
        )
    )
    p.examples = [
        {"row": r, "value": f"{got} fields: {text[:200]}"}
        for r, (_, got, text) in list(zip(rows, ragged, strict=True))[: v.lim]
    ]


def scan_parquet(v: Validator, stream: BinaryIO, chunk_bytes: int) -> bool:
    scanned = False

    def on_header(names: list[str]) -> bool:
        nonlocal scanned
        scanned = v.check_header(names)
        return scanned

    wanted = list(v.cols)
    for cols in parquet_batches(stream, wanted, chunk_bytes, on_header):
        v.add_batch(cols, len(next(iter(cols.values()))) if cols else 0)
    return scanned
