"""One meaning of missing, for datasets (validation and training read them through
core/datasets.py) and labels files (core/monitoring/labels.py). Pure Python: the light
functions import it too.

A value is missing when it is null, empty, NaN, or one of NULL_VALUES -- except that a
categorical feature whose spec lists such a token as a category (region "NA") keeps it."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["NULL_VALUES", "is_missing_text", "missing_markers", "shared_markers"]

NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
_NULLS = frozenset(NULL_VALUES)


def missing_markers(categories: Iterable[str] | None = None) -> list[str]:
    """The tokens that mean missing in a column: NULL_VALUES, except a listed category."""
    keep = set(categories or ()) - {""}
    return [v for v in NULL_VALUES if v not in keep]


def shared_markers(per_column: Iterable[list[str]]) -> list[str]:
    """The tokens missing in every column: the CSV reader can null those itself (fast, in C++)
    for all columns at once; only a column's other tokens are left to `normalise`."""
    out = list(NULL_VALUES)
    for markers in per_column:
        out = [m for m in out if m in markers]
    return out


def is_missing_text(value: str | None) -> bool:
    """A text field (a CSV cell, stripped of surrounding blanks) that means missing."""
    return value is None or value.strip() in _NULLS
