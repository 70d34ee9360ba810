"""A version's page: lineage, holdout metrics, parity, the promotion gates, the model card and
the alias moves that involved it."""

from __future__ import annotations

import json
from typing import Any

from mlops_kit.console.html import Html, fmt, html, join, short_time, when
from mlops_kit.console.model_pages import parity_badge
from mlops_kit.console.pages import alias_badges, page

__all__ = ["version_page"]

LINEAGE = (("dataset key", "dataset_key"), ("dataset etag", "dataset_etag"),
           ("dataset object version", "dataset_version_id"), ("dataset sha256", "dataset_sha256"),
           ("rows", "rows"), ("validation report", "validation_report"),
           ("spec hash", "spec_hash"), ("estimator", "estimator"), ("trigger", "trigger"),
           ("package version", "package_version"))
PARITY = (("rows compared", "rows"), ("label agreement", "label_agreement"),
          ("max |diff|", "max_abs_diff"), ("mean |diff|", "mean_abs_diff"),
          ("tolerance", "tolerance"), ("near ties", "near_ties"), ("reason", "reason"))


def _kv(pairs: list[tuple[str, Any]], id_: str = "") -> Html:
    return html('<dl class="kv" id="{}">{}</dl>', id_, join(
        html("<dt>{}</dt><dd><code>{}</code></dd>", k, fmt(v)) for k, v in pairs))


def _gates(gates: dict[str, Any]) -> Html:
    rows = []
    for name, g in gates.items():
        if not isinstance(g, dict):
            continue
        passed = g.get("passed")
        detail = ", ".join(f"{k} {fmt(v)}" for k, v in g.items() if k not in ("passed",
                                                                               "required"))
        rows.append(html('<tr><td>{}</td><td class="num">{}</td><td>{}</td><td class="small">{}'
                         '</td></tr>', name, fmt(g.get("required")),
                         html('<span class="badge {}">{}</span>', "ok" if passed else "bad",
                              "passed" if passed else "failed") if passed is not None
                         else html('<span class="badge warn">pending</span>'), detail))
    if not rows:
        return html('<p class="muted">No gate recorded.</p>')
    return html('<p class="small muted">on {} = {}</p><table id="gates"><thead><tr><th>gate</th>'
                '<th class="num">required</th><th>result</th><th>detail</th></tr></thead>'
                '<tbody>{}</tbody></table>', gates.get("metric", "?"), fmt(gates.get("value")),
                join(rows))


def _card(card: dict[str, Any] | None, params: dict[str, Any]) -> Html:
    if card is None:
        return html('<p class="muted">No model card (the run did not finish).</p>')
    full = json.dumps(card, indent=2, sort_keys=True, default=str)
    return html('<div class="pre" id="card-description">{}</div>'
                '<h3>Estimator parameters</h3>{}<details><summary class="small">the whole '
                'card.json</summary><pre id="card-json">{}</pre></details>',
                card.get("description") or "(no description in the spec)",
                _kv(sorted(params.items())), full)


def _history(events: list[dict]) -> Html:
    if not events:
        return html('<p class="muted">No alias ever pointed at this version.</p>')
    return html('<ol class="timeline">{}</ol>', join(
        html('<li class="{}"><strong>{}</strong> {} v{} → v{} <span class="muted small">'
             '{} · by {}</span><br><span class="small">{}</span></li>',
             h.get("action", ""), h.get("action", ""), h.get("alias") or "",
             fmt(h.get("from_version")), fmt(h.get("to_version")), short_time(h.get("at")),
             h.get("actor", ""), h.get("reason", "")) for h in reversed(events)))


def _contract(view: dict[str, Any]) -> Html:
    """The version's input contract and whether the champion's callers keep working."""
    features = (view.get("contract") or {}).get("features") or []
    if not features:
        return html('<p class="muted">No input contract recorded (registered before contracts '
                    'existed).</p>')
    compat = view.get("compatibility") or {}
    ok = compat.get("compatible")
    badge = (html('<span class="badge ok">{}</span>',
                  compat.get("note") or "compatible with the champion") if ok
             else html('<span class="badge bad">breaks the champion&#39;s callers</span>')
             if ok is False else html('<span class="badge warn">{}</span>',
                                      compat.get("note") or "no champion to compare with"))
    breaking = when(compat.get("breaking"), html('<ul class="alerts" id="breaking">{}</ul>', join(
        html("<li>{}</li>", b) for b in compat.get("breaking") or [])))
    rows = join(html('<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="small">{}</td>'
                     '</tr>', f.get("name"), f.get("type"), "yes" if f.get("nullable") else "no",
                     fmt(f.get("default")),
                     ", ".join(f.get("categories") or []) if f.get("type") == "categorical"
                     else f"{fmt(f.get('min'))} … {fmt(f.get('max'))}") for f in features)
    return html('<p>{}</p>{}<table id="contract"><thead><tr><th>feature</th><th>type</th>'
                '<th>nullable</th><th>default</th><th>accepts</th></tr></thead><tbody>{}'
                '</tbody></table>', badge, breaking, rows)


def _health(h: dict[str, Any] | None) -> Html:
    if h is None:
        return html('<p class="muted">Not readable here; the monitoring report shows it.</p>')
    if not h.get("requests"):
        return html('<p class="muted">No request in the last {} hours.</p>', h.get("hours"))
    lat = h.get("latency_ms") or {}
    events = ", ".join(f"{k} {n}" for k, n in sorted((h.get("events") or {}).items())) or "none"
    return _kv([(f"requests (last {h.get('hours')}h)", h.get("requests")),
                ("2xx / 4xx / 5xx", f"{h.get('2xx')} / {h.get('4xx')} / {h.get('5xx')}"),
                ("5xx rate", f"{100 * (h.get('5xx_rate') or 0):.2f}%"),
                ("latency p50 / p95 / p99 (ms)",
                 f"{fmt(lat.get('p50'))} / {fmt(lat.get('p95'))} / {fmt(lat.get('p99'))}"),
                ("routing events", events)], "health")


def version_page(d: dict[str, Any], *, root: str, signed_in: bool) -> Html:
    model, r = d["model"], d["record"]
    v = r["version"]
    lineage = r.get("lineage") or {}
    pairs = [(label, lineage.get(k)) for label, k in LINEAGE]
    pairs += [("artifact", r.get("artifact_key")), ("artifact sha256", r.get("sha256")),
              ("created", r.get("created_at")), ("completed", r.get("completed_at")),
              ("rows train / holdout", f"{fmt(r.get('rows_train'))} / {fmt(r.get('rows_holdout'))}"),
              ("approval", ("approved by " + str(r.get("approved_by"))) if r.get("approved")
               else "required" if r.get("requires_approval") else "not required")]
    if "positive_class" in r:  # binary: the class f1 is about
        pairs.append(("positive class", r.get("positive_class")))
    parity = r.get("parity") or {}
    metrics = join(html('<tr><td>{}</td><td class="num">{}</td></tr>', k, fmt(val))
                   for k, val in (r.get("metrics") or {}).items())
    reasons = when(r.get("reasons"), html('<div class="summary alert" id="reasons">{}</div>',
                                          "; ".join(r.get("reasons") or [])))
    body = html(
        '<p class="crumbs"><a href="{}">Models</a> / <a href="{}models/{}">{}</a> / v{}</p>'
        '<h1>{} v{} <span class="badge {}">{}</span> {}</h1>{}'
        '<div class="cols"><section><h2>Lineage</h2>{}</section><section>'
        '<h2>Holdout metrics</h2><table id="metrics"><tbody>{}</tbody></table>'
        '<h2>Parity (ONNX vs the trained model)</h2><p>{}</p>{}'
        '<h2>Promotion gates</h2>{}</section></div>'
        '<h2>Input contract</h2>{}<h2>Serving health</h2>{}'
        '<h2>Model card</h2>{}<h2>History of this version</h2>{}',
        root, root, model, model, v, model, v, r.get("status", ""), r.get("status", ""),
        alias_badges(v, d["aliases"]), reasons, _kv(pairs, "lineage"), metrics,
        parity_badge(parity), _kv([(label, parity.get(k)) for label, k in PARITY if k in parity]),
        _gates(r.get("gates") or {}), _contract(d.get("contract") or {}), _health(d.get("health")),
        _card(d["card"], r.get("params") or {}),
        _history(d["history"]))
    return page(f"{model} v{v}", body, root=root, signed_in=signed_in)
