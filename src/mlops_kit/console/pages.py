"""The page shell, the sign-in page, error pages and the models list.

Links are relative (`root` is "./", "../", ...) so the console works under any mount point,
e.g. behind an API Gateway stage prefix. Every value goes through html() (escaped)."""

from __future__ import annotations

from typing import Any

from mlops_kit.console.html import Html, fmt, html, join, short_time, when
from mlops_kit.console.style import CSS_VERSION

__all__ = ["alias_badges", "error_page", "login_page", "models_page", "page"]


def page(title: str, body: Html, *, root: str, signed_in: bool = False) -> Html:
    logout = when(signed_in, html('<form method="post" action="{}logout">'
                                  '<button type="submit">Sign out</button></form>', root))
    return html(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="referrer" content="same-origin">'
        '<title>{} · mlops-kit</title><link rel="stylesheet" href="{}static/console.css?v={}"></head>'
        '<body><header class="top"><a class="brand" href="{}">mlops-kit</a>'
        '<a href="{}">Models</a><span class="small">read-only console</span>{}</header>'
        '<main>{}</main></body></html>',
        title, root, CSS_VERSION, root, root, logout, body)


def login_page(root: str, next_path: str, error: str | None = None) -> Html:
    body = html(
        '<form class="login" method="post" action="{}login">'
        '<h1>Sign in</h1><p class="muted">Paste the API token (<code>mlops-kit token</code> '
        'prints a new one with <code>--rotate</code>). It is checked on the server and never '
        'stored in the browser: you get a session cookie.</p>{}'
        '<label for="token">API token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" '
        'required autofocus>'
        '<input type="hidden" name="next" value="{}">'
        '<button type="submit">Sign in</button></form>',
        root, when(error, html('<p class="error" role="alert">{}</p>', error)), next_path)
    return page("Sign in", body, root=root)


def error_page(status: int, message: str, *, root: str, signed_in: bool = False) -> Html:
    body = html('<h1>{}</h1><p class="error">{}</p><p><a href="{}">All models</a></p>',
                {404: "Not found", 405: "Method not allowed", 403: "Forbidden"}.get(
                    status, "Something went wrong"), message, root)
    return page(f"Error {status}", body, root=root, signed_in=signed_in)


def alias_badges(version: int, aliases: dict[str, dict]) -> Html:
    out = []
    champion, challenger = aliases.get("champion") or {}, aliases.get("challenger") or {}
    if champion.get("version") == version:
        out.append(html('<span class="badge champion">champion</span>'))
    if challenger.get("version") == version:
        out.append(html('<span class="badge challenger">challenger · {} {}</span>',
                        challenger.get("mode", "canary"), _pct(challenger.get("weight"))))
    return join(out, " ")


def _pct(v: Any) -> str:
    return f"{100 * float(v):.0f}%" if isinstance(v, (int, float)) else ""


def challenger_text(alias: dict | None) -> Html:
    if not alias or alias.get("version") is None:
        return html('<span class="muted">none</span>')
    mode = alias.get("mode", "canary")
    share = f"{_pct(alias.get('weight'))} of traffic" if mode == "canary" else "scored in shadow"
    return html('v{} <span class="badge {}">{}</span> <span class="muted small">{}</span>',
                alias["version"], mode, mode, share)


def monitoring_badge(run: dict | None) -> Html:
    if not run:
        return html('<span class="muted">not monitored yet</span>')
    if run.get("status") != "ok":
        label, cls = str(run.get("status", "?")).replace("_", " "), "warn"
    elif run.get("drifted"):
        label, cls = "drift", "drifted"
    else:
        label, cls = "no drift", "ok"
    quality = run.get("quality") or {}
    alert = when(quality.get("alert"), html(' <span class="badge bad">quality</span>'))
    drifted = [n for n, f in (run.get("features") or {}).items() if f.get("drifted")]
    return html('<span class="badge {}">{}</span>{} <span class="muted small">{}{}</span>',
                cls, label, alert, short_time(run.get("at")),
                f" · {', '.join(drifted[:4])}" if drifted else "")


def models_page(models: list[dict[str, Any]], *, root: str, signed_in: bool) -> Html:
    rows = []
    for m in models:
        aliases = m["aliases"]
        champ = aliases.get("champion") or {}
        metric = m.get("champion_metric")
        champ_cell = html('<a href="{}models/{}/versions/{}">v{}</a> <span class="muted small">'
                          '{}</span>', root, m["model"], champ["version"], champ["version"],
                          f"{metric[0]} {fmt(metric[1])}" if metric else "") \
            if champ.get("version") is not None else html('<span class="muted">none</span>')
        rows.append(html(
            '<tr data-model="{}"><td><a href="{}models/{}">{}</a></td><td class="num">{}{}</td>'
            '<td>{}</td><td>{}</td><td>{}</td></tr>',
            m["model"], root, m["model"], m["model"], m["versions"],  # how many, not the newest
            when((m.get("counts") or {}).get("archived"), html(
                ' <span class="muted small">({} archived)</span>',
                (m.get("counts") or {}).get("archived"))), champ_cell,
            challenger_text(aliases.get("challenger")), monitoring_badge(m.get("monitoring"))))
    served = sum(1 for m in models if (m["aliases"].get("champion") or {}).get("version"))
    drifting = sum(1 for m in models if (m.get("monitoring") or {}).get("drifted"))
    challengers = sum(1 for m in models
                      if (m["aliases"].get("challenger") or {}).get("version") is not None)
    cards = html(
        '<div class="cards"><div class="card"><div class="label">models</div>'
        '<div class="value">{}</div></div><div class="card"><div class="label">served '
        '(with a champion)</div><div class="value">{}</div></div><div class="card"><div '
        'class="label">challengers live</div><div class="value">{}</div></div><div class="card">'
        '<div class="label">drifting at the last run</div><div class="value">{}</div></div></div>',
        len(models), served, challengers, drifting)
    table = html('<table id="models"><thead><tr><th>model</th><th class="num">versions</th>'
                 '<th>champion</th><th>challenger</th><th>last monitoring</th></tr></thead>'
                 '<tbody>{}</tbody></table>', join(rows)) if rows else \
        html('<p class="muted">No models yet: apply a spec and upload a dataset '
             '(<code>mlops-kit spec apply</code>, <code>mlops-kit upload</code>).</p>')
    body = html('<h1>Models</h1><p class="muted">Everything here is read-only: promotion, '
                'rollback and approval stay in the audited CLI (<code>mlops-kit registry</code>).'
                '</p>{}{}', cards, table)
    return page("Models", body, root=root, signed_in=signed_in)
