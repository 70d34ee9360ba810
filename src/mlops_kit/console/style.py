"""The console's one stylesheet, served at /ui/static/console.css (the CSP allows styles from
'self' only: no inline style). A Python constant rather than package data, so every packaging
(wheel, Lambda zip) carries it without a manifest rule."""

from __future__ import annotations

import hashlib

CSS = """
:root{--ink:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f5f7fa;--card:#fff;--blue:#2f6fde;
--green:#3e9b5f;--red:#d64545;--amber:#c58b1b;--grey:#9aa5b1}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:var(--ink);
background:var(--bg)}
header.top{background:#102a43;color:#fff;padding:10px 24px;display:flex;align-items:center;gap:18px}
header.top a{color:#fff;text-decoration:none;font-weight:600}
header.top .brand{font-size:16px}
header.top form{margin-left:auto}
header.top button{background:transparent;color:#d9e2ec;border:1px solid #486581;border-radius:4px;
padding:3px 10px;cursor:pointer}
main{max-width:1180px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:17px;margin:26px 0 8px}h3{font-size:14px;margin:12px 0 4px}
a{color:var(--blue)}
.muted{color:var(--muted)}.small{font-size:12px}
.crumbs{font-size:13px;color:var(--muted)}.crumbs a{color:var(--muted)}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;
color:#fff;background:var(--grey);white-space:nowrap}
.badge.ok,.badge.registered,.badge.champion{background:var(--green)}
.badge.bad,.badge.rejected,.badge.drifted,.badge.failed{background:var(--red)}
.badge.warn,.badge.pending,.badge.insufficient_data,.badge.challenger{background:var(--amber)}
.badge.canary,.badge.shadow{background:#7b61ff}
table{border-collapse:collapse;width:100%;background:var(--card);font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.champion td{background:#eefaf2}tr.rejected td{color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:12px;margin:12px 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px 12px}
.card .label{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:18px;font-weight:600;margin-top:2px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:6px;padding:8px;
overflow:hidden}
figure.drifted{border-color:var(--red)}
figcaption{font-weight:600;margin-bottom:4px}
svg.chart{max-width:100%;height:auto;display:block}
svg .grid{stroke:#eef1f5;stroke-width:1}svg .axis{stroke:#9aa5b1;stroke-width:1}
svg .tick{font-size:10px;fill:#616e7c}svg .threshold{stroke:var(--red);stroke-width:1.2}
svg .threshold-label{font-size:10px;fill:var(--red)}
svg .series{stroke:var(--blue);stroke-width:2}
svg .pt{fill:var(--blue);stroke:#fff;stroke-width:1.5}
svg .pt.champion{fill:var(--green);stroke:#102a43;stroke-width:2}
svg .pt.rejected,svg .pt.failed{fill:var(--grey)}
svg .pt.drifted,svg .pt.alert{fill:var(--red)}
svg.quality .series{stroke:var(--green)}svg.quality .pt{fill:var(--green)}
svg.quality .pt.alert{fill:var(--red)}
ol.timeline{list-style:none;margin:0;padding:0 0 0 14px;border-left:2px solid var(--line)}
ol.timeline li{position:relative;margin:0 0 10px;padding-left:10px}
ol.timeline li::before{content:"";position:absolute;left:-21px;top:5px;width:10px;height:10px;
border-radius:50%;background:var(--blue)}
ol.timeline li.rollback::before{background:var(--amber)}
ol.timeline li.promote::before{background:var(--green)}
.summary{background:var(--card);border-left:4px solid var(--blue);padding:8px 12px;margin:10px 0}
.summary.alert{border-left-color:var(--red)}
pre,.pre{white-space:pre-wrap;word-break:break-word;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;
background:#eef1f5;padding:8px;border-radius:4px;margin:4px 0}
code{font:12px ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;background:var(--card);
padding:10px 12px;border:1px solid var(--line);border-radius:6px;margin:0}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;word-break:break-word}
form.login{background:var(--card);max-width:420px;margin:60px auto;padding:22px;border:1px solid var(--line);
border-radius:8px}
form.login input[type=password]{width:100%;padding:8px;font:inherit;margin:8px 0 12px}
form.login button{background:var(--blue);color:#fff;border:0;border-radius:4px;padding:8px 16px;
font:inherit;cursor:pointer}
.error{color:var(--red);font-weight:600}
.card .value .small{font-weight:400}
.cols{display:grid;grid-template-columns:minmax(0,1.35fr) minmax(0,1fr);gap:18px}
@media (max-width:900px){.cols{grid-template-columns:1fr}}
details{margin:8px 0}summary{cursor:pointer;color:var(--muted)}
"""

CSS_BYTES = CSS.encode()
CSS_VERSION = hashlib.sha256(CSS_BYTES).hexdigest()[:16]  # pages link console.css?v=<this>
CSS_ETAG = f'"{CSS_VERSION}"'
