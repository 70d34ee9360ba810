"""A model's page: versions, metric per version, monitoring trends, promotion history and
experiment runs."""

from __future__ import annotations

from typing import Any

from mlops_kit.console.data import primary_metric
from mlops_kit.console.html import Html, fmt, html, join, short_time, when
from mlops_kit.console.pages import alias_badges, challenger_text, monitoring_badge, page
from mlops_kit.console.svg import Point, line_chart

__all__ = ["model_page", "parity_badge"]

MAX_METRIC_COLUMNS = 5


def _card(label: str, value: Any, note: Any = "") -> Html:
    return html('<div class="card"><div class="label">{}</div><div class="value">{}</div>'
                '<div class="muted small">{}</div></div>', label, value, note)


def parity_badge(p: dict | None) -> Html:
    if not p:
        return html('<span class="muted">–</span>')
    ok = p.get("passed")
    diff = p.get("max_abs_diff", p.get("max_prob_diff"))
    return html('<span class="badge {}">{}</span> <span class="muted small">{}</span>',
                "ok" if ok else "bad", "passed" if ok else "failed",
                f"max |diff| {fmt(diff, 2)}" if diff is not None else p.get("reason", ""))


# -- the model page -----------------------------------------------------------------------------
def _metric_chart(model: str, versions: list[dict], champion: int | None) -> Html:
    metric = next((primary_metric(v) for v in reversed(versions) if primary_metric(v)), None)
    if metric is None:
        return html('<p class="muted">No metrics recorded yet.</p>')
    points = [Point(f"v{v['version']}", (v.get("metrics") or {}).get(metric),
                    "champion" if v["version"] == champion else str(v.get("status", "")),
                    str(v.get("status", "")) + (" · champion" if v["version"] == champion else ""))
              for v in versions]
    return html('<figure class="metric" data-metric="{}"><figcaption>{} per version (holdout)'
                '</figcaption>{}</figure>', metric, metric,
                line_chart(points, title=f"{model}: {metric} per version", width=1100,
                           height=220, kind="metric"))


def _versions_table(root: str, model: str, versions: list[dict], aliases: dict) -> Html:
    names: list[str] = []
    for v in versions:
        for k in v.get("metrics") or {}:
            if k not in names:
                names.append(k)
    names = names[:MAX_METRIC_COLUMNS]
    champion = (aliases.get("champion") or {}).get("version")
    rows = []
    for v in reversed(versions):
        lineage = v.get("lineage") or {}
        metrics = v.get("metrics") or {}
        rows.append(html(
            '<tr class="{} {}" data-version="{}"><td><a href="{}models/{}/versions/{}">v{}</a> {}'
            '</td><td><span class="badge {}">{}</span></td><td>{}</td>{}<td>{}</td><td>{}</td>'
            '<td><code>{}</code></td><td class="small">{}</td></tr>',
            v.get("status", ""), "champion" if v["version"] == champion else "", v["version"],
            root, model, v["version"], v["version"], alias_badges(v["version"], aliases),
            v.get("status", ""), v.get("status", ""), short_time(v.get("created_at")),
            join(html('<td class="num">{}</td>', fmt(metrics.get(n))) for n in names),
            parity_badge(v.get("parity")), lineage.get("trigger", ""), lineage.get("dataset_key", ""),
            "; ".join(v.get("reasons") or [])))
    head = join(html('<th class="num">{}</th>', n) for n in names)
    return html('<table id="versions"><thead><tr><th>version</th><th>status</th><th>created</th>'
                '{}<th>parity</th><th>trigger</th><th>dataset</th><th>reasons</th></tr></thead>'
                '<tbody>{}</tbody></table>', head, join(rows))


def _older(model: str, older: int) -> Html:
    """The versions the page leaves out (it shows the newest VERSIONS_LIMIT)."""
    return when(older > 0, html(
        '<p class="muted small" id="older-versions">{} older version{} not shown: '
        '<code>mlops-kit registry versions {}</code> lists every version.</p>',
        older, "" if older == 1 else "s", model))


def _features_cut(runs: list[dict]) -> Html:
    """Says so when the summary kept only each run's most drifted features."""
    total = max((int(r.get("features_total") or 0) for r in runs), default=0)
    kept = max((len(r.get("features") or {}) for r in runs), default=0)
    return when(total > kept, html(
        '<p class="muted small" id="features-cut">The {} most drifted of {} features in each '
        'run; the monitoring report has them all.</p>', kept, total))


def _monitoring(root: str, model: str, runs: list[dict]) -> Html:
    if not runs:
        return html('<p class="muted">No monitoring run yet (<code>mlops-kit monitor {}</code>,'
                    ' or the schedule).</p>', model)
    last = runs[-1]
    times = [short_time(r.get("at")) for r in runs]
    same_day = len({t[:10] for t in times}) == 1
    labels = [t[11:] if same_day else t[5:] for t in times]  # HH:MM, or MM-DD HH:MM
    names: list[str] = []
    for r in runs:
        names += [n for n in (r.get("features") or {}) if n not in names]
    threshold = last.get("threshold")
    figures = []
    for name in names:
        pts = [Point(lab, ((r.get("features") or {}).get(name) or {}).get("psi"),
                     "drifted" if ((r.get("features") or {}).get(name) or {}).get("drifted")
                     else "", f"v{r.get('version')}") for lab, r in zip(labels, runs, strict=True)]
        drifted = bool(((last.get("features") or {}).get(name) or {}).get("drifted"))
        figures.append(html(
            '<figure class="drift{}" data-feature="{}"><figcaption>{}</figcaption>{}</figure>',
            " drifted" if drifted else "", name, name,
            line_chart(pts, title=f"{name}: PSI over time", width=360, height=170,
                       threshold=threshold, threshold_label=f"threshold {fmt(threshold)}",
                       y_floor=0.0, kind="drift")))
    pred = [Point(lab, r.get("prediction_psi"), "drifted" if r.get("prediction_drifted") else "")
            for lab, r in zip(labels, runs, strict=True)]
    q = last.get("quality") or {}
    quality = [Point(lab, (r.get("quality") or {}).get("value"),
                     "alert" if (r.get("quality") or {}).get("alert") else "",
                     f"{(r.get('quality') or {}).get('labelled', 0)} labelled rows")
               for lab, r in zip(labels, runs, strict=True)]
    return html(
        '<div class="summary{}" id="last-run">{}<br>{}<br><a href="{}models/{}/report">Open the '
        'latest monitoring report</a></div>'
        '<h3>Drift score (PSI) per feature over the last {} runs{}</h3>{}<div class="grid" '
        'id="drift">{}</div><div class="grid"><figure class="prediction-drift"><figcaption>'
        'Prediction drift (PSI)</figcaption>{}</figure><figure class="live-quality" '
        'data-metric="{}"><figcaption>Live {} from labels</figcaption>{}</figure></div>',
        " alert" if last.get("drifted") or q.get("alert") else "", monitoring_badge(last),
        last.get("summary", ""), root, model, len(runs),
        f" (UTC, {times[0][:10]})" if same_day else " (UTC)", _features_cut(runs),
        join(figures),
        line_chart(pred, title="prediction PSI over time", width=360, height=170,
                   threshold=threshold, y_floor=0.0, kind="drift"),
        q.get("metric") or "", q.get("metric") or "quality",
        line_chart(quality, title=f"live {q.get('metric')} over time", width=360, height=170,
                   threshold=q.get("minimum"), threshold_label="minimum", kind="quality"))


def _timeline(history: list[dict], total: int) -> Html:
    if not history:
        return html('<p class="muted">No alias has moved yet.</p>')
    items = [html('<li class="{}" data-seq="{}"><strong>{}</strong> {} v{} → v{} '
                  '<span class="muted small">{} · by {}</span><br><span class="small">{}</span>'
                  '</li>', h.get("action", ""), h.get("seq", ""), h.get("action", ""),
                  h.get("alias") or "", fmt(h.get("from_version")), fmt(h.get("to_version")),
                  short_time(h.get("at")), h.get("actor", ""), h.get("reason", ""))
             for h in reversed(history)]
    more = when(total > len(history), html('<p class="muted small">{} older events not shown'
                                           '</p>', total - len(history)))
    return html('<ol class="timeline" id="history">{}</ol>{}', join(items), more)


def _runs(root: str, model: str, runs: list[dict]) -> Html:
    """Experiment runs (a spec with `search`): one row per run, its winner and counts."""
    if not runs:
        return html("")
    rows = []
    for r in reversed(runs):
        planned = {t.get("hash"): t for t in r.get("trials") or []}
        winner = planned.get(r.get("winner")) or {}
        counts = r.get("counts") or {}
        best = (r.get("best") or {}).get(r.get("metric"))
        status = str(r.get("status", ""))
        rows.append(html(
            '<tr data-run="{}"><td><a href="{}models/{}/runs/{}">run {}</a></td><td><span '
            'class="badge {}">{}</span></td><td>{}</td><td class="num">{} / {}</td><td>{}</td>'
            '<td class="num">{}</td><td>{}</td><td><a href="{}models/{}/versions/{}">v{}</a> {}'
            '</td><td>{}</td></tr>',
            r.get("run"), root, model, r.get("run"), r.get("run"),
            {"finished": "ok", "failed": "bad"}.get(status, "warn"), status,
            r.get("strategy", ""), r.get("done", 0), r.get("total", 0),
            ", ".join(f"{counts[k]} {k}" for k in ("ok", "failed", "skipped") if counts.get(k)),
            fmt(best), winner.get("kind", ""), root, model, r.get("version"), r.get("version"),
            "promoted" if r.get("promoted") else "", short_time(r.get("started_at"))))
    metric = runs[-1].get("metric", "")
    return html('<h2>Experiment runs</h2><table id="runs"><thead><tr><th>run</th><th>status</th>'
                '<th>strategy</th><th class="num">trials</th><th>outcomes</th><th class="num">'
                'best CV {}</th><th>winner</th><th>version</th><th>started</th></tr></thead>'
                '<tbody>{}</tbody></table>', metric, join(rows))


def model_page(d: dict[str, Any], *, root: str, signed_in: bool) -> Html:
    model, versions, aliases, counts = d["model"], d["versions"], d["aliases"], d["counts"]
    champ = aliases.get("champion") or {}
    runs = d["monitoring"]
    cards = html('<div class="cards">{}{}{}{}</div>',
                 _card("champion", f"v{champ['version']}" if champ.get("version") else "none",
                       f"since {short_time(champ.get('updated_at'))}" if champ else ""),
                 html('<div class="card"><div class="label">challenger</div><div class="value">'
                      '{}</div></div>', challenger_text(aliases.get("challenger"))),
                 _card("versions", sum(counts.values()), ", ".join(
                     f"{counts[k]} {k}" for k in ("registered", "archived") if counts.get(k))),
                 html('<div class="card"><div class="label">last monitoring</div>'
                      '<div class="value">{}</div></div>', monitoring_badge(runs[-1] if runs
                                                                            else None)))
    body = html(
        '<p class="crumbs"><a href="{}">Models</a> / {}</p><h1>{}</h1>{}'
        '<h2>Versions</h2>{}{}{}<h2>Monitoring</h2>{}<h2>Promotion history</h2>{}{}',
        root, model, model, cards, _metric_chart(model, versions, champ.get("version")),
        _versions_table(root, model, versions, aliases), _older(model, d["older"]),
        _monitoring(root, model, runs),
        _timeline(d["history"], d["history_total"]), _runs(root, model, d.get("runs") or []))
    return page(model, body, root=root, signed_in=signed_in)
