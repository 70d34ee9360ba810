"""Escaping by construction: every value put into a page is escaped unless it is already `Html`.

Model names, dataset keys, spec descriptions, reasons and actors are user-controlled. Pages are
built with `html(template, *values)`, which escapes each value that is not `Html` (markup made
the same way), so forgetting to escape is not possible; only literal templates in this package
are trusted. Standard library only: the console also runs in the light serve function.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from html import escape
from typing import Any

__all__ = ["Html", "attr", "fmt", "html", "join", "when"]


class Html(str):
    """A string that is already safe markup. Only this package makes them."""

    __slots__ = ()


def _safe(value: Any) -> str:
    if isinstance(value, Html):
        return value
    if value is None:
        return ""
    return escape(str(value), quote=True)


def html(template: str, *values: Any) -> Html:
    """`template` with each `{}` replaced by the escaped value (Html values pass as they are)."""
    return Html(template.format(*(_safe(v) for v in values)))


def join(parts: Iterable[Any], sep: str = "") -> Html:
    return Html(sep.join(_safe(p) for p in parts))


def attr(value: Any) -> Html:
    """A value for a quoted attribute (escaped, quotes included)."""
    return Html(escape(str(value), quote=True))


def when(cond: Any, markup: Html) -> Html:
    return markup if cond else Html("")


def fmt(v: Any, digits: int = 4) -> str:
    """A number or value as people read it (the caller's html() escapes the result)."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != v:  # NaN
            return "–"
        return f"{v:.{digits}g}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def short_time(value: Any) -> str:
    """ISO timestamp -> 'YYYY-MM-DD HH:MM' (UTC as stored); anything else as text."""
    if not isinstance(value, str):
        return fmt(value)
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return value
