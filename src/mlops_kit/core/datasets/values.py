"""Values of a dataset column batch, any Arrow type, with one meaning of missing
(core/missing.py): null, empty, a NULL_VALUES token or a NaN float. Numbers are finite floats
(surrounding whitespace allowed; "1_000" and infinities are not numbers); categories are text,
numbers spelled as serving spells a JSON number (str(value)); class labels are integers when
every label is one ("1" and "1.0" are the class 1), text otherwise."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_kit.errors import ValidationError

InvalidUtf8 = Callable[[np.ndarray, list], None]  # (mask of bad values, the decoded values)


def decode_text(arr: pa.Array, on_invalid: InvalidUtf8 | None = None) -> pa.Array:
    """binary -> string; invalid UTF-8 is kept with replacement characters and reported
    through on_invalid (without one it is an error naming nothing but the byte)."""
    try:
        return pc.cast(arr, pa.string())
    except pa.ArrowInvalid:
        raw = arr.to_pylist()
        bad = np.zeros(len(raw), dtype=bool)
        out: list[str | None] = []
        for i, b in enumerate(raw):
            if b is None:
                out.append(None)
                continue
            try:
                out.append(b.decode("utf-8"))
            except UnicodeDecodeError:
                bad[i] = True
                out.append(b.decode("utf-8", errors="replace"))
        if on_invalid is None:
            raise ValidationError(f"row {int(np.flatnonzero(bad)[0]) + 1}: not valid UTF-8: "
                                  "save the file as UTF-8") from None
        on_invalid(bad, out)
        return pa.array(out, pa.string())


def normalise(arr: pa.Array | pa.ChunkedArray, markers: list[str],
              on_invalid_utf8: InvalidUtf8 | None = None,
              applied: Collection[str] = ()) -> pa.Array:
    """One batch of one column, any Arrow type -> a plain array: chunks combined, dictionaries
    decoded (a pandas category column), binary decoded as UTF-8, missing tokens made null.
    `applied`: tokens the CSV reader already made null (see missing.shared_markers)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        arr = decode_text(arr, on_invalid_utf8)
    left = [m for m in markers if m not in applied]
    if (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)) and left:
        marker = pc.is_in(arr, value_set=pa.array(left, arr.type))
        if pc.any(marker).as_py():  # if_else copies the column: only when a token is there
            arr = pc.if_else(marker, pa.scalar(None, arr.type), arr)
    return arr


def is_number_type(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def is_text_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)


def _parse_float(text: str | None) -> float | None:
    if text is None:
        return math.nan
    s = text.strip()
    if not s or "_" in s:
        return None
    try:
        return float(s)
    except ValueError:
        return None


def to_float(arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """A normalised column as float64: NaN where missing, plus a mask of the values that are
    not finite numbers (None: every value is a number or missing)."""
    t, n = arr.type, len(arr)
    if is_number_type(t):
        vals = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        bad = None
    elif is_text_type(t):
        try:
            vals = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
            bad = None
        except pa.ArrowInvalid:  # slow path, only for a batch holding unparseable values
            parsed = [_parse_float(v) for v in arr.to_pylist()]
            bad = np.fromiter((p is None for p in parsed), dtype=bool, count=n)
            vals = np.array([math.nan if p is None else p for p in parsed], dtype=np.float64)
    else:  # bool, timestamp, list, struct...: not a number at all
        return np.full(n, np.nan), ~arr.is_null().to_numpy(zero_copy_only=False)
    inf = np.isinf(vals)
    if inf.any():
        vals = np.where(inf, np.nan, vals)
        bad = inf if bad is None else bad | inf
    return vals, bad


def to_text(arr: pa.Array) -> tuple[pa.Array, np.ndarray | None]:
    """A normalised column as strings (null where missing), plus a mask of values that are not
    text or numbers. Floats are spelled as serving spells a JSON number (str(1.0) == '1.0')."""
    t, n = arr.type, len(arr)
    if pa.types.is_null(t):
        return pa.nulls(n, pa.string()), None
    if is_text_type(t):
        return arr, None
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        vals = arr.to_pylist()
        missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in vals]
        return pa.array([None if m else str(float(v)) for v, m in zip(vals, missing, strict=True)],
                        pa.string()), None
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return pc.cast(arr, pa.string()), None
    if pa.types.is_timestamp(t) or pa.types.is_date(t):  # ISO 8601 text (datetime features)
        return pc.cast(arr, pa.string()), None
    return pa.nulls(n, pa.string()), ~arr.is_null().to_numpy(zero_copy_only=False)


def to_boolean(arr: pa.Array, true_values: Iterable[str], false_values: Iterable[str],
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """A normalised column as 1.0 / 0.0 (NaN where missing), plus a mask of the values that are
    none of the spellings (case-insensitive, blanks stripped). Booleans are themselves; numbers
    count when they are 1 or 0."""
    t, n = arr.type, len(arr)
    if pa.types.is_boolean(t):
        return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), None
    if is_number_type(t):
        vals = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        bad = ~np.isnan(vals) & (vals != 0) & (vals != 1)
        return np.where(bad, np.nan, vals), (bad if bad.any() else None)
    if not is_text_type(t):
        return np.full(n, np.nan), ~arr.is_null().to_numpy(zero_copy_only=False)
    low = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
    yes = pc.is_in(low, value_set=pa.array([v.strip().lower() for v in true_values]))
    no = pc.is_in(low, value_set=pa.array([v.strip().lower() for v in false_values]))
    yes_np = pc.fill_null(yes, False).to_numpy(zero_copy_only=False)
    no_np = pc.fill_null(no, False).to_numpy(zero_copy_only=False)
    present = ~arr.is_null().to_numpy(zero_copy_only=False)
    vals = np.where(yes_np, 1.0, np.where(no_np, 0.0, np.nan))
    bad = present & ~yes_np & ~no_np
    return vals, (bad if bad.any() else None)


def label_text(arr: pa.Array) -> tuple[pa.Array, np.ndarray | None]:
    """A target column as text: booleans are the classes 0 and 1."""
    if pa.types.is_boolean(arr.type):
        arr = pc.cast(arr, pa.int8())
    return to_text(arr)


def class_labels(values: Iterable[str]) -> dict[str, Any]:
    """Each distinct label text -> its class: integers when every label is an integer."""
    distinct = set(values)
    ints: dict[str, Any] = {}
    for v in distinct:
        number = _parse_float(v)
        if number is None or math.isnan(number) or not number.is_integer():
            return {v: v for v in distinct}
        ints[v] = int(number)
    return ints
