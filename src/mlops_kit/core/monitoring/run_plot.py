"""An experiment run as server-side SVG (no scripts; every value escaped: kinds and params
come from users). Pure; the console (web UI), the run page and the monitoring report embed it.

- `run_plot_svg(points, metric)`: every trial's CV score, one row per estimator kind, the
  best ringed, failed/skipped trials as crosses in the left gutter;
- `param_plots(points, metric)`: a scatter of each numeric parameter against the score.
A point is a dict with `hash`, `kind`, `params`, `value` (None unless scored), `status`, `best`:
the rows of core.registry.run_views.ranked_trials fit as they are.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

__all__ = ["param_plots", "run_plot_svg"]

PALETTE = ["#2f6fde", "#c58b1b", "#3e9b5f", "#8e44ad", "#d64545", "#16a2b8", "#7b8794", "#e67e22"]
BEST = "#1b7f3b"


def _colors(points: list[dict[str, Any]]) -> dict[str, str]:
    kinds = sorted({str(p.get("kind")) for p in points})
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(kinds)}


def _span(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.01, 1e-3)
    return lo - pad, hi + pad


def _tip(p: dict[str, Any], metric: str) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted((p.get("params") or {}).items()))
    score = f"{metric} {p['value']:.4f}" if p.get("value") is not None else p.get("status", "")
    return escape(f"{p.get('kind')} {p.get('hash')} {score}; {params}"
                  + (f"; {p['reason']}" if p.get("reason") else ""))


def run_plot_svg(points: list[dict[str, Any]], metric: str, *, width: int = 640) -> str:
    """Dot plot: x = CV score, one row per kind (best kind on top)."""
    scored = [p for p in points if p.get("value") is not None]
    others = [p for p in points if p.get("value") is None]
    best_of: dict[str, float] = {}
    for p in scored:
        best_of[str(p["kind"])] = max(best_of.get(str(p["kind"]), -math.inf), p["value"])
    kinds = sorted({str(p.get("kind")) for p in points},
                   key=lambda k: (k not in best_of, -best_of.get(k, 0.0), k))
    row_h, top, left, gutter = 34, 14, 170, 40
    height = top + row_h * max(len(kinds), 1) + 34
    plot_l, plot_r = left + gutter, width - 12
    lo, hi = _span([p["value"] for p in scored]) if scored else (0.0, 1.0)
    x = lambda v: plot_l + (v - lo) / (hi - lo) * (plot_r - plot_l)  # noqa: E731
    colors = _colors(points)
    out = [f'<svg class="run-plot" role="img" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}"><title>trials by {escape(metric)}'
           "</title>"]
    axis_y = top + row_h * max(len(kinds), 1)
    for i in range(5):
        v = lo + (hi - lo) * (i + 0.5) / 5
        out.append(f'<line x1="{x(v):.1f}" y1="{top}" x2="{x(v):.1f}" y2="{axis_y}" '
                   f'stroke="#e4e7eb"/><text x="{x(v):.1f}" y="{axis_y + 14}" font-size="10" '
                   f'text-anchor="middle" fill="#616e7c">{v:.3f}</text>')
    out.append(f'<text x="{(plot_l + plot_r) / 2:.1f}" y="{axis_y + 28}" font-size="11" '
               f'text-anchor="middle" fill="#3e4c59">CV {escape(metric)}</text>'
               f'<text x="{left + gutter / 2}" y="{axis_y + 14}" font-size="10" '
               'text-anchor="middle" fill="#616e7c">failed</text>')
    for r, kind in enumerate(kinds):
        cy = top + r * row_h + row_h / 2
        out.append(f'<text x="{left - 6}" y="{cy + 4:.1f}" font-size="11" text-anchor="end" '
                   f'fill="{colors[kind]}">{escape(kind)}</text>'
                   f'<line x1="{plot_l}" y1="{cy:.1f}" x2="{plot_r}" y2="{cy:.1f}" '
                   'stroke="#f0f2f5"/>')
        mine = [p for p in scored if str(p["kind"]) == kind]
        for j, p in enumerate(mine):
            dy = ((j % 5) - 2) * 3.0
            ring = (f'<circle cx="{x(p["value"]):.1f}" cy="{cy + dy:.1f}" r="9" fill="none" '
                    f'stroke="{BEST}" stroke-width="2"/>' if p.get("best") else "")
            out.append(f'{ring}<circle class="trial{" best" if p.get("best") else ""}" '
                       f'data-hash="{escape(str(p.get("hash")))}" cx="{x(p["value"]):.1f}" '
                       f'cy="{cy + dy:.1f}" r="4.5" fill="{colors[kind]}" fill-opacity="0.8">'
                       f'<title>{_tip(p, metric)}</title></circle>')
        for j, p in enumerate(q for q in others if str(q.get("kind")) == kind):
            gx, gy = left + 10 + (j % 4) * 7, cy + ((j // 4) % 3 - 1) * 7
            out.append(f'<g class="trial {escape(str(p.get("status")))}"><title>{_tip(p, metric)}'
                       f'</title><path d="M{gx - 3} {gy - 3}L{gx + 3} {gy + 3}M{gx - 3} {gy + 3}'
                       f'L{gx + 3} {gy - 3}" stroke="#d64545" stroke-width="1.6"/></g>')
    out.append("</svg>")
    return "".join(out)


def param_plots(points: list[dict[str, Any]], metric: str, *, width: int = 300,
                height: int = 200) -> list[tuple[str, str]]:
    """(param, svg) for each numeric parameter with >= 2 distinct values among scored trials."""
    scored = [p for p in points if p.get("value") is not None]
    names = sorted({k for p in scored for k, v in (p.get("params") or {}).items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
    colors = _colors(points)
    out = []
    for name in names:
        pts = [(float(p["params"][name]), p) for p in scored
               if isinstance((p.get("params") or {}).get(name), (int, float))
               and not isinstance(p["params"][name], bool)]
        xs = [v for v, _ in pts]
        if len(set(xs)) < 2:
            continue
        log = min(xs) > 0 and max(xs) / min(xs) >= 20
        tx = [math.log10(v) if log else v for v in xs]
        xlo, xhi = _span(tx)
        ylo, yhi = _span([p["value"] for _, p in pts])
        pl, pr, pt, pb = 44, width - 8, 8, height - 34
        parts = [f'<svg class="param-plot" role="img" xmlns="http://www.w3.org/2000/svg" '
                 f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
                 f'data-param="{escape(name)}"><title>{escape(name)} vs {escape(metric)}</title>'
                 f'<rect x="{pl}" y="{pt}" width="{pr - pl}" height="{pb - pt}" fill="none" '
                 'stroke="#e4e7eb"/>']
        values = [p["value"] for _, p in pts]
        for yv in (min(values), max(values)):  # label the data's extremes, not the padding
            y = pb - (yv - ylo) / (yhi - ylo) * (pb - pt)
            parts.append(f'<text x="{pl - 4}" y="{y + 3:.1f}" font-size="9" '
                         f'text-anchor="end" fill="#616e7c">{yv:.3f}</text>')
        for xv, anchor in ((min(xs), "start"), (max(xs), "end")):
            x = pl + ((math.log10(xv) if log else xv) - xlo) / (xhi - xlo) * (pr - pl)
            parts.append(f'<text x="{x:.1f}" y="{pb + 12}" font-size="9" text-anchor="{anchor}" '
                         f'fill="#616e7c">{xv:.3g}</text>')
        parts.append(f'<text x="{(pl + pr) / 2:.1f}" y="{height - 6}" font-size="11" '
                     f'text-anchor="middle" fill="#3e4c59">{escape(name)}{" (log)" if log else ""}'
                     "</text>")
        for t, (_, p) in zip(tx, pts, strict=True):
            cx = pl + (t - xlo) / (xhi - xlo) * (pr - pl)
            cy = pb - (p["value"] - ylo) / (yhi - ylo) * (pb - pt)
            stroke = f' stroke="{BEST}" stroke-width="2.5"' if p.get("best") else ""
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" '
                         f'fill="{colors[str(p.get("kind"))]}" fill-opacity="0.8"{stroke}>'
                         f'<title>{_tip(p, metric)}</title></circle>')
        parts.append("</svg>")
        out.append((name, "".join(parts)))
    return out
