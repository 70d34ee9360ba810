"""One experiment run as a self-contained HTML page (models/<model>/<version>/run.html):
the summary, the trial plots (run_plot.py) and the ranked trial table. Every value escaped."""

from __future__ import annotations

from html import escape
from typing import Any

from mlops_kit.core.monitoring.report_html import CSS, _fmt, _kv_table
from mlops_kit.core.monitoring.run_plot import param_plots, run_plot_svg

__all__ = ["render_run_report"]


def render_run_report(summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """One run as a page: summary, the plots, the ranked trial table."""
    metric = str(summary.get("metric"))
    title = f"{summary.get('model')} run {summary.get('run')}"
    table = ["<table class=\"trials\"><tr><th></th><th>rank</th><th>trial</th><th>kind</th>"
             f"<th>params</th><th>CV {escape(metric)}</th><th>holdout {escape(metric)}</th>"
             "<th>fit s</th><th>status</th></tr>"]
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in sorted((r.get("params") or {}).items()))
        table.append(
            f'<tr class="{"best" if r.get("best") else ""}"><td>{"★" if r.get("best") else ""}'
            f'</td><td class="num">{_fmt(r.get("rank"))}</td><td>{escape(str(r.get("hash")))}'
            f'</td><td>{escape(str(r.get("kind")))}</td><td>{escape(params)}</td>'
            f'<td class="num">{_fmt(r.get("value"), 4)}</td>'
            f'<td class="num">{_fmt((r.get("holdout") or {}).get(metric), 4)}</td>'
            f'<td class="num">{_fmt(r.get("fit_seconds"))}</td>'
            f'<td>{escape(str(r.get("status")))}'
            f'{": " + escape(str(r["reason"])) if r.get("reason") else ""}</td></tr>')
    table.append("</table>")
    head = {k: summary.get(k) for k in ("status", "strategy", "engine", "metric", "cv", "trials",
                                        "ok", "failed", "skipped", "seconds", "dataset_key",
                                        "spec_hash", "version", "version_status", "promoted")}
    figures = "".join(f'<figure><figcaption>{escape(n)}</figcaption>{svg}</figure>'
                      for n, svg in param_plots(rows, metric))
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}tr.best td{{background:#eefaf1}}"
            f"</style></head><body><main><h1>{escape(title)}</h1>"
            + _kv_table(head, "run") + "<h2>Trials</h2><figure>"
            + run_plot_svg(rows, metric) + "</figure>"
            + (f"<h2>Parameters vs {escape(metric)}</h2><div class=\"grid\">{figures}</div>"
               if figures else "")
            + "<h2>Ranking</h2>" + "".join(table) + "</main></body></html>\n")
