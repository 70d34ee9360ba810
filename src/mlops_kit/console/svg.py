"""Server-side SVG charts: no JavaScript, no CDN, no inline style (the CSP forbids both).

Colours come from classes in console.css; geometry from SVG presentation attributes. Every
point carries its value in data-* attributes and a <title> tooltip, so a person hovering and a
test reading the DOM see the same numbers. Labels are escaped like everything else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mlops_kit.console.html import Html, fmt, html, join

__all__ = ["Point", "line_chart"]

PAD_L, PAD_R, PAD_T, PAD_B = 46, 12, 10, 34
X_LABEL_PX = 80  # room one x label needs: fewer labels on narrow charts, never overlapping


@dataclass(frozen=True)
class Point:
    label: str  # x axis (a version, a date)
    y: float | None  # None: a gap (a version with no value)
    cls: str = ""  # css class of the marker (champion, rejected, drifted ...)
    note: str = ""  # tooltip text after the value


def _nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def _num(v: object) -> float | None:
    """A finite number, else None (a gap): values come from stored JSON."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def line_chart(points: Sequence[Point], *, title: str, width: int = 560, height: int = 200,
               threshold: float | None = None, threshold_label: str = "",
               y_floor: float | None = None, y_ceil: float | None = None,
               kind: str = "line") -> Html:
    """Points joined by a line, a dashed threshold, a y axis fitted to the data (plus the
    optional floor/ceiling, e.g. 0 for drift scores). kind: css hook (metric, drift, quality)."""
    ys = [_num(p.y) for p in points]
    values = [v for v in ys if v is not None]
    if not values:
        return html('<p class="muted nodata">{}: no data yet</p>', title)
    limit = _num(threshold)
    bounds = values + ([limit] if limit is not None else [])
    lo, hi = min(bounds), max(bounds)
    if y_floor is not None:
        lo = min(lo, y_floor)
    if y_ceil is not None:
        hi = max(hi, y_ceil)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 0.05
    ticks = _nice_ticks(lo - (0 if y_floor is not None and lo == y_floor else pad), hi + pad)
    y0, y1 = ticks[0], ticks[-1]
    iw, ih = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    n = len(points)

    def x(i: int) -> float:
        return PAD_L + (iw * (i + 0.5) / n)

    def y(v: float) -> float:
        return PAD_T + ih - (v - y0) / (y1 - y0) * ih

    parts: list[Html] = []
    for t in ticks:
        parts.append(html('<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                          '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
                          PAD_L, width - PAD_R, f"{y(t):.1f}", f"{y(t):.1f}", PAD_L - 4,
                          f"{y(t) + 3.5:.1f}", fmt(t, 3)))
    every = max(1, math.ceil(n / max(2, iw // X_LABEL_PX)))
    for i, p in enumerate(points):
        if i % every == 0:
            parts.append(html('<text class="tick" x="{}" y="{}" text-anchor="middle">{}</text>',
                              f"{x(i):.1f}", height - PAD_B + 14, p.label))
    if limit is not None:
        ty = f"{y(limit):.1f}"
        parts.append(html('<line class="threshold" x1="{}" x2="{}" y1="{}" y2="{}" '
                          'stroke-dasharray="5 4" data-threshold="{}"/>'
                          '<text class="threshold-label" x="{}" y="{}" text-anchor="end">{}</text>',
                          PAD_L, width - PAD_R, ty, ty, limit, width - PAD_R,
                          f"{y(limit) - 4:.1f}", threshold_label))
    # the line, broken where a value is missing
    run: list[str] = []
    segments: list[list[str]] = []
    for i, v in enumerate(ys):
        if v is not None:
            run.append(f"{x(i):.1f},{y(v):.1f}")
        elif run:
            segments.append(run)
            run = []
    if run:
        segments.append(run)
    for seg in segments:
        if len(seg) > 1:
            parts.append(html('<polyline class="series" fill="none" points="{}"/>', " ".join(seg)))
    for i, (p, v) in enumerate(zip(points, ys, strict=True)):
        if v is None:
            continue
        tip = f"{p.label}: {fmt(v)}" + (f" ({p.note})" if p.note else "")
        parts.append(html('<circle class="pt {}" cx="{}" cy="{}" r="4" data-label="{}" '
                          'data-value="{}"><title>{}</title></circle>',
                          p.cls, f"{x(i):.1f}", f"{y(v):.1f}", p.label, repr(v), tip))
    parts.append(html('<line class="axis" x1="{}" x2="{}" y1="{}" y2="{}"/>', PAD_L, PAD_L,
                      PAD_T, PAD_T + ih))
    return html('<svg class="chart {}" viewBox="0 0 {} {}" width="{}" height="{}" role="img" '
                'aria-label="{}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}</svg>',
                kind, width, height, width, height, title, title, join(parts))
