"""The monitoring report as one self-contained HTML page: inline CSS and inline SVG charts, no
scripts, fonts, images or CDNs (it opens offline, from an object store or as a mail attachment).
Every value is HTML-escaped: feature names and categories come from user data."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from mlops_kit.core.monitoring.run_plot import run_plot_svg

__all__ = ["bar_chart", "render_report"]

REF_COLOR = "#9aa5b1"
CUR_COLOR = "#2f6fde"
DRIFT_COLOR = "#d64545"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2933;
background:#f5f7fa}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.muted{color:#616e7c}.badge{display:inline-block;padding:2px 8px;border-radius:10px;
font-size:12px;font-weight:600;color:#fff}
.ok{background:#3e9b5f}.bad{background:#d64545}.warn{background:#c58b1b}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #e4e7eb;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drifted td{background:#fdf0f0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:14px}
figure{margin:0;background:#fff;border:1px solid #e4e7eb;border-radius:6px;padding:8px}
figcaption{font-weight:600;margin-bottom:4px}figure.drifted{border-color:#d64545}
.summary{background:#fff;border-left:4px solid #2f6fde;padding:10px 14px;margin:12px 0}
.summary.alert{border-left-color:#d64545}
ul.alerts li{margin:2px 0}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
"""


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e5 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return escape(str(v))


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def bar_chart(labels: list[str], ref: list[float], cur: list[float], *, title: str,
              drifted: bool = False, width: int = 330, height: int = 190) -> str:
    """Grouped bars (reference vs current share per bin/category) as inline SVG."""
    n = max(len(labels), 1)
    ref = list(ref) + [0.0] * (n - len(ref))
    cur = list(cur) + [0.0] * (n - len(cur))
    top = max([*ref, *cur, 1e-9])
    left, bottom, plot_h = 34, 46, height - 46 - 10
    plot_w = width - left - 6
    slot = plot_w / n
    bar = max(1.0, slot * 0.38)
    color = DRIFT_COLOR if drifted else CUR_COLOR
    parts = [f'<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'data-feature="{escape(title)}"><title>{escape(title)}: reference vs current'
             f'</title>',
             f'<line x1="{left}" y1="{10 + plot_h}" x2="{width - 4}" y2="{10 + plot_h}" '
             'stroke="#9aa5b1"/>']
    for frac in (0.5, 1.0):
        y = 10 + plot_h * (1 - frac)
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="9" text-anchor="end" '
                     f'fill="#616e7c">{100 * top * frac:.0f}%</text>'
                     f'<line x1="{left}" y1="{y:.1f}" x2="{width - 4}" y2="{y:.1f}" '
                     'stroke="#e4e7eb"/>')
    for i, label in enumerate(labels or ["(no data)"]):
        x = left + i * slot + slot / 2
        for j, (v, fill, kind) in enumerate(((ref[i], REF_COLOR, "ref"), (cur[i], color, "cur"))):
            h = plot_h * v / top
            parts.append(f'<rect class="bar {kind}" x="{x - bar + j * bar:.1f}" '
                         f'y="{10 + plot_h - h:.1f}" width="{bar:.1f}" height="{max(h, 0):.1f}" '
                         f'fill="{fill}"><title>{escape(str(label))} {kind}: '
                         f'{100 * v:.1f}%</title></rect>')
        short = str(label) if len(str(label)) <= 12 else str(label)[:11] + "…"
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 14}" font-size="9" '
                     f'text-anchor="end" transform="rotate(-35 {x:.1f} {height - bottom + 14})" '
                     f'fill="#3e4c59">{escape(short)}</text>')
    parts.append("</svg>")
    return "".join(parts)


CALENDAR_LABELS = {
    "month": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    "weekday": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    "hour": [f"{h:02d}h" for h in range(24)],
}


def _figure(name: str, caption: str, chart: str, note: str, drifted: bool,
            part: str = "") -> str:
    attrs = f' data-part="{escape(part)}"' if part else ""
    return (f'<figure class="feature {"drifted" if drifted else ""}" '
            f'data-feature="{escape(name)}"{attrs}>'
            f'<figcaption>{escape(name)} <span class="muted">({escape(caption)})</span>'
            f'</figcaption>{chart}<div class="muted">{escape(note)}</div></figure>')


def _feature_charts(drift: dict) -> str:
    figs = []
    for name, f in (drift.get("features") or {}).items():
        h = f.get("histogram") or {}
        kind = f.get("type", "")
        note = "; ".join(f.get("reasons") or []) or "no drift"
        caption = f"{kind}{', words per text' if kind == 'text' else ''}, psi {_fmt(f.get('psi'))}"
        figs.append(_figure(name, caption, bar_chart(
            h.get("labels") or [], h.get("ref") or [], h.get("cur") or [], title=name,
            drifted=bool(f.get("drifted"))), note, bool(f.get("drifted"))))
        for part, p in (f.get("parts") or {}).items():  # a datetime's calendar parts
            figs.append(_figure(name, f"{part}, psi {_fmt(p.get('psi'))}", bar_chart(
                CALENDAR_LABELS.get(part, []), p.get("ref") or [], p.get("cur") or [],
                title=f"{name} {part}", drifted=bool(p.get("drifted"))),
                "drifted" if p.get("drifted") else "no drift", bool(p.get("drifted")), part))
        if f.get("top_terms"):  # a text's words that moved most (shares of all words)
            terms = f["top_terms"]
            figs.append(_figure(name, f"top words, shift {_fmt(f.get('top_term_shift'))}",
                                bar_chart([t["term"] for t in terms], [t["ref"] for t in terms],
                                          [t["cur"] for t in terms], title=f"{name} words",
                                          drifted=bool(f.get("top_term_alert"))),
                                f"out of vocabulary {_pct(f.get('oov_rate_ref'))} → "
                                f"{_pct(f.get('oov_rate_cur'))}", bool(f.get("top_term_alert")
                                                                      or f.get("oov_alert")),
                                "terms"))
    return '<div class="grid">' + "".join(figs) + "</div>"


def _details(f: dict) -> str:
    """The type's own figures for the drift table: new categories, a boolean's true rate, a
    text's out-of-vocabulary rate and top-term shift, a datetime's range and parts."""
    kind = f.get("type")
    if f.get("new_categories"):
        return "new: " + ", ".join(map(str, f["new_categories"][:5]))
    if kind == "boolean":
        return f"true {_pct(f.get('true_rate_ref'))} → {_pct(f.get('true_rate_cur'))}"
    if kind == "text" and "oov_rate_cur" in f:
        return (f"out of vocabulary {_pct(f.get('oov_rate_ref'))} → "
                f"{_pct(f.get('oov_rate_cur'))}; top-term shift {_fmt(f.get('top_term_shift'))}"
                f" (max {_fmt(f.get('top_term_threshold'))})")
    if kind == "datetime":
        parts = ", ".join(f"{k} psi {_fmt(v.get('psi'))}" for k, v in (f.get("parts") or {}).items())
        seen = (f"; seen {f.get('min_date_cur')} .. {f.get('max_date_cur')}"
                if f.get("min_date_cur") else "")
        return (f"range {f.get('range_min')} .. {f.get('range_max')}{seen}"
                + (f"; {parts}" if parts else ""))
    return ""


def _drift_table(drift: dict) -> str:
    rows = []
    for name, f in (drift.get("features") or {}).items():
        extra = _details(f)
        rows.append(
            f'<tr class="{"drifted" if f.get("drifted") else ""}"><td>{escape(name)}</td>'
            f'<td>{escape(f.get("type", ""))}</td><td>{escape(f.get("method", ""))}</td>'
            f'<td class="num">{_fmt(f.get("statistic"))}</td>'
            f'<td class="num">{_fmt(f.get("threshold"))}</td>'
            f'<td class="num">{_fmt(f.get("psi"))}</td>'
            f'<td class="num">{_pct(f.get("null_rate_ref"))} → {_pct(f.get("null_rate_cur"))}</td>'
            f'<td class="num">{_pct(f.get("out_of_range_rate"))}</td><td>{escape(extra)}</td>'
            f'<td>{"<b>yes</b>" if f.get("drifted") else "no"}</td>'
            f'<td>{escape("; ".join(f.get("reasons") or []))}</td></tr>')
    return ("<table class=\"drift\"><tr><th>feature</th><th>type</th><th>test</th><th>statistic"
            "</th><th>threshold</th><th>PSI</th><th>missing (ref → now)</th><th>out of range"
            "</th><th>details</th><th>drifted</th><th>why</th></tr>" + "".join(rows)
            + "</table>")


def _quality(q: dict) -> str:
    labels = q.get("labels") or {}
    head = (f"<p>{_fmt(labels.get('labels', 0))} labels in {_fmt(labels.get('files', 0))} "
            f"file(s); {_fmt(labels.get('matched_rows', 0))} of "
            f"{_fmt(labels.get('window_rows', 0))} captured rows labelled "
            f"(coverage {_pct(labels.get('coverage'))}); "
            f"{_fmt(labels.get('labels_unmatched', 0))} labels matched no captured row in "
            f"the window.</p>")
    names = sorted({m for v in (q.get("by_version") or {}).values() for m in v["metrics"]}
                   | set(q.get("training_metrics") or {}))
    rows = ["<tr><td>training holdout (champion)</td><td class=\"num\">–</td>"
            "<td class=\"num\">–</td>"
            + "".join(f'<td class="num">{_fmt((q.get("training_metrics") or {}).get(m))}</td>'
                      for m in names) + "</tr>"]
    for v in (q.get("by_version") or {}).values():
        rows.append(f"<tr><td>v{escape(str(v['version']))} {escape(v['role'])}</td>"
                    f"<td class=\"num\">{_fmt(v['labelled'])}</td>"
                    f"<td class=\"num\">{_pct(v['coverage'])}</td>"
                    + "".join(f'<td class="num">{_fmt(v["metrics"].get(m))}</td>' for m in names)
                    + "</tr>")
    policy = (f"<p class=\"muted\">alert when live {escape(str(q.get('metric')))} crosses "
              f"{_fmt(q.get('minimum'))}</p>" if q.get("minimum") is not None else "")
    reasons = "".join(f"<li>{escape(r)}</li>" for r in q.get("reasons") or [])
    return (head + policy + (f"<ul class=\"alerts\">{reasons}</ul>" if reasons else "")
            + "<table class=\"quality\"><tr><th>version</th><th>labelled</th><th>coverage</th>"
            + "".join(f"<th>{escape(m)}</th>" for m in names) + "</tr>" + "".join(rows)
            + "</table>")


def serving_health_table(health: dict) -> str:
    """Requests per version and status class, latency percentiles and routing events."""
    versions = (health or {}).get("versions") or {}
    if not versions:
        return "<p class=\"muted\">no serving health recorded in the window</p>"
    rows = []
    for v, h in versions.items():
        lat = h.get("latency_ms") or {}
        events = ", ".join(f"{k} {n}" for k, n in sorted((h.get("events") or {}).items()))
        rows.append(f"<tr><td>{'v' if v.isdigit() else ''}{escape(v)}</td>"
                    f"<td class=\"num\">{_fmt(h.get('requests'))}</td>"
                    + "".join(f'<td class="num">{_fmt(h.get(k))}</td>'
                              for k in ("2xx", "4xx", "5xx"))
                    + f"<td class=\"num\">{_pct(h.get('5xx_rate'))}</td>"
                    + "".join(f'<td class="num">{_fmt(lat.get(k))}</td>'
                              for k in ("p50", "p95", "p99"))
                    + f"<td>{escape(events)}</td></tr>")
    return ("<table class=\"health\"><tr><th>version</th><th>requests</th><th>2xx</th>"
            "<th>4xx</th><th>5xx</th><th>5xx rate</th><th>p50 ms</th><th>p95 ms</th>"
            "<th>p99 ms</th><th>routing events</th></tr>" + "".join(rows) + "</table>")


def _kv_table(d: dict, cls: str) -> str:
    rows = []
    for k, v in d.items():
        if isinstance(v, (dict, list)):
            v = json.dumps(v, default=str, sort_keys=True)
            if len(v) > 400:
                v = v[:400] + "…"
        rows.append(f"<tr><th>{escape(str(k))}</th><td>{_fmt(v)}</td></tr>")
    return f'<table class="{cls}">' + "".join(rows) + "</table>"


def _experiment(exp: dict) -> list[str]:
    """The champion's training run: the winner against the trials it beat (from lineage)."""
    metric = str(exp.get("metric"))
    winner = exp.get("winner") or {}
    points = [{**winner, "value": (winner.get("cv") or {}).get(metric), "best": True,
               "status": "ok"}]
    points += [{**t, "value": t.get("cv"), "best": False, "status": "ok"}
               for t in exp.get("beat") or []]
    return [f"<h2>Training run {escape(str(exp.get('run')))}</h2>",
            f"<p>{_fmt(exp.get('trials'))} trials ({escape(str(exp.get('strategy')))} search, "
            f"{_fmt(exp.get('ok'))} ok, {_fmt(exp.get('failed'))} failed, "
            f"{_fmt(exp.get('skipped'))} skipped); the winner "
            f"{escape(str(winner.get('kind')))} {escape(str(winner.get('hash')))} beat "
            f"{len(exp.get('beat') or [])} on CV {escape(metric)}.</p>",
            '<figure class="run">' + run_plot_svg(points, metric) + "</figure>"]


def render_report(report: dict) -> str:
    model, version = report.get("model", "?"), report.get("version", "?")
    status = report.get("status", "?")
    alerts = report.get("alerts") or []
    badge = ("bad", "ALERT") if alerts else (("ok", "OK") if status == "ok" else ("warn", status))
    window = report.get("window") or {}
    drift = report.get("drift") or {}
    pred = report.get("prediction_drift") or {}
    body = [
        f"<h1>{escape(str(model))} v{escape(str(version))} monitoring "
        f'<span class="badge {badge[0]}">{escape(badge[1])}</span></h1>',
        f'<div class="muted">window {escape(str(window.get("start")))} → '
        f'{escape(str(window.get("end")))} · {_fmt(report.get("rows", 0))} rows · '
        f'{_fmt(report.get("capture_objects", 0))} capture objects · generated '
        f'{escape(str(report.get("generated_at")))}</div>',
        f'<div class="summary {"alert" if alerts else ""}">{escape(report.get("summary", ""))}'
        "</div>",
    ]
    if alerts:
        body.append("<h2>Alerts</h2><ul class=\"alerts\">" + "".join(
            f"<li><b>{escape(a['kind'])}</b> {escape(a.get('feature', ''))}: "
            f"{escape('; '.join(a.get('reasons') or []))}</li>" for a in alerts) + "</ul>")
    if drift.get("features"):
        body += ["<h2>Data drift</h2>", _drift_table(drift),
                 '<h2>Reference vs current</h2><div class="legend muted">'
                 f'<span style="background:{REF_COLOR}"></span>training reference'
                 f'<span style="background:{CUR_COLOR}"></span>current window'
                 f'<span style="background:{DRIFT_COLOR}"></span>current (drifted)</div>',
                 _feature_charts(drift)]
    if pred.get("histogram"):
        h = pred["histogram"]
        body += ["<h2>Prediction drift</h2>",
                 f"<p>PSI {_fmt(pred.get('psi'))} (threshold {_fmt(pred.get('threshold'))})"
                 f"{' — <b>drifted</b>' if pred.get('drifted') else ''}</p>",
                 '<figure class="predictions">'
                 + bar_chart(h["labels"], h["ref"], h["cur"], title="predictions",
                             drifted=bool(pred.get("drifted"))) + "</figure>"]
    if report.get("quality"):
        body += ["<h2>Live quality (late labels)</h2>", _quality(report["quality"])]
    if report.get("serving_health") is not None:
        body += ["<h2>Serving health</h2>", serving_health_table(report["serving_health"])]
    if report.get("retrain"):
        body += ["<h2>Retrain</h2>", _kv_table(report["retrain"], "retrain")]
    if report.get("lineage"):
        lineage = dict(report["lineage"])
        inner = dict(lineage.pop("lineage", None) or {})
        experiment = inner.pop("experiment", None)
        body += ["<h2>Champion lineage</h2>", _kv_table({**lineage, **inner}, "lineage")]
        if isinstance(experiment, dict):
            body += _experiment(experiment)
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{escape(str(model))} v{escape(str(version))} monitoring</title>"
            f"<style>{CSS}</style></head><body><main>" + "".join(body)
            + "</main></body></html>\n")
