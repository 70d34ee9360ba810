"""`mlops-kit report MODEL`: the latest monitoring report .

Human output: the summary and the drift table. --json: the report JSON. --path: write the HTML
page to a local file and print its path. --open: the same, then open it in a browser."""

from __future__ import annotations

import json
import tempfile
import webbrowser
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from mlops_kit.cli.common import JsonOpt, backend, console, emit, err, handle_errors
from mlops_kit.cli.progress import Steps
from mlops_kit.core import layout
from mlops_kit.core.layout import check_name
from mlops_kit.errors import NotFound

app = typer.Typer()


@app.command()
@handle_errors
def monitor(model: str, window_hours: float = typer.Option(None, "--window-hours"),
            as_json: bool = JsonOpt) -> None:
    """Run monitoring now: drift and live quality over captured requests."""
    from mlops_kit.core.capture.parquet import compact_captures
    from mlops_kit.core.monitoring.usecase import run_monitor
    from mlops_kit.local.worker import announcer

    b = backend()
    compact_captures(b.ctx.store, model, b.ctx.clock.now())  # closed hours -> Parquet
    with Steps(err) as steps:
        steps.begin(f"monitoring {model}: drift and live quality over captured requests")
        report = run_monitor(b.ctx, model, window_hours=window_hours,
                             announce=announcer(b) if b.settings.backend == "local" else None)
        steps.end("monitored", f"monitored {model}: {report.get('status')}, "
                               f"{report.get('rows', 0) or 0:,} rows"
                               + (", drift detected" if report.get("drifted") else ""))

    def human(r):
        if r.get("status") != "ok":
            console.print(f"{model}: {r.get('status')} — {escape(str(r.get('reason', '')))}")
            _quality_and_retrain(r)
            return
        drift = r["drift"]
        t = Table("feature", "type", "psi", "drifted", "reasons")
        for name, f in drift["features"].items():
            t.add_row(name, f["type"], f"{f['psi']:.3f}",
                      "[red]yes[/red]" if f["drifted"] else "no", "; ".join(f.get("reasons", [])))
        console.print(t)
        console.print(f"rows {r['rows']}  drifted: {'[red]yes[/red]' if r['drifted'] else 'no'}"
                      f"  report: {r['report_key']}")
        _quality_and_retrain(r)

    emit(report, as_json, human)


def _quality_and_retrain(r: dict) -> None:
    """Live quality from late labels, the retrain decision, and which policy decided."""
    q = r.get("quality") or {}
    champion = q.get("champion")
    if champion and champion.get("metrics"):
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in champion["metrics"].items())
        console.print(f"live quality: {metrics} on {champion['labelled']:,} labelled rows "
                      f"(coverage {champion['coverage']:.0%})"
                      + ("  [red]below the minimum[/red]" if q.get("alert") else ""))
    elif q:
        console.print("live quality: no labelled rows in the window (upload labels with "
                      "mlops-kit labels)")
    retrain = r.get("retrain") or {}
    if retrain:
        status = str(retrain.get("status"))
        reasons = {"disabled": "monitoring.retrain_on_drift is false", "not_needed": "no drift"}
        why = reasons.get(status, str(retrain.get("reason") or ""))
        if status == "requested":
            why = f"wrote {retrain.get('dataset_key')}"
        elif status == "cooldown" and retrain.get("until"):
            why = f"cooldown until {retrain['until']}"
        console.print(f"retrain: {status}" + (f" — {escape(str(why))}" if why else ""))
    if r.get("policy_source"):
        console.print(f"[dim]policy: {escape(str(r['policy_source']))}[/dim]")


def _html_file(store, key: str, model: str, stamp: str) -> Path:
    local = getattr(store, "local_path", None)  # the local backend: the stored file itself
    if local is not None:
        return Path(local(key))
    out = Path(tempfile.gettempdir()) / f"mlops-kit-{model}-monitoring-{stamp}.html"
    out.write_bytes(store.get(key))
    return out


@app.command()
@handle_errors
def report(
    model: str,
    open_: bool = typer.Option(False, "--open", help="Open the HTML report in a browser."),
    path: bool = typer.Option(False, "--path", help="Print the local path of the HTML report."),
    as_json: bool = JsonOpt,
) -> None:
    """The latest monitoring report of MODEL (run `mlops-kit monitor MODEL` to make one)."""
    check_name(model)
    store = backend().ctx.store
    base = layout.reports_prefix(model, "monitoring")
    if not store.exists(base + "latest.json"):
        raise NotFound(f"no monitoring report for {model!r} yet: run `mlops-kit monitor "
                       f"{model}` first", field="model")
    doc = json.loads(store.get(base + "latest.json"))
    html_key = doc.get("html_key") or base + "latest.html"
    if not store.exists(html_key):
        html_key = base + "latest.html"
    stamp = doc.get("generated_at", "latest").replace(":", "")[:15]
    html_path = _html_file(store, html_key, model, stamp) if (open_ or path) else None
    if html_path is not None:
        doc["html_path"] = str(html_path)
    if open_ and html_path is not None:
        webbrowser.open(html_path.resolve().as_uri())
    if path and not as_json:
        console.print(str(html_path), soft_wrap=True, highlight=False)
        return

    def human(r: dict) -> None:
        console.print(f"[bold]{r['model']} v{r['version']}[/bold] {r.get('generated_at')} "
                      f"({r.get('status')}, {r.get('rows', 0):,} rows)")
        console.print(escape(str(r.get("summary", ""))))
        feats = (r.get("drift") or {}).get("features") or {}
        if feats:
            t = Table("feature", "type", "test", "statistic", "psi", "missing now",
                      "out of range", "drifted")
            for name, f in feats.items():
                t.add_row(name, f["type"], f["method"], f"{f['statistic']:.3g}",
                          f"{f['psi']:.3f}", f"{100 * f['null_rate_cur']:.1f}%",
                          f"{100 * f['out_of_range_rate']:.1f}%",
                          "[red]yes[/red]" if f["drifted"] else "no")
            console.print(t)
        champion = (r.get("quality") or {}).get("champion")
        if champion:
            console.print("live: " + ", ".join(f"{k}={v:.3f}" for k, v in
                                               champion["metrics"].items())
                          + f" on {champion['labelled']} labelled rows")
        console.print(f"report: {r.get('report_key')}  html: {r.get('html_path') or html_key}")

    emit(doc, as_json, human)
