"""`mlops-kit upload | labels | worker`: data in, and the local worker that processes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlops_kit.cli.common import JsonOpt, backend, console, emit, handle_errors

app = typer.Typer()


@app.command()
@handle_errors
def upload(file: Path = typer.Argument(..., exists=True, dir_okay=False),
           model: str = typer.Option(..., "--model", "-m"),
           process: bool = typer.Option(True, help="Run the worker once after uploading."),
           as_json: bool = JsonOpt) -> None:
    """Upload a dataset to datasets/<model>/ (starts validation -> training)."""
    from mlops_kit.local.worker import run_once
    from mlops_kit.local.worker import upload as do_upload

    b = backend()
    out: dict[str, Any] = {"upload": do_upload(b, file, model)}
    if process and b.settings.backend == "local":
        out["results"] = run_once(b)
    emit(out, as_json, _print_results)


@app.command()
@handle_errors
def labels(file: Path = typer.Argument(..., exists=True, dir_okay=False),
           model: str = typer.Option(..., "--model", "-m"), as_json: bool = JsonOpt) -> None:
    """Upload late ground truth (request_id + target column) to labels/<model>/."""
    from mlops_kit.core.layout import labels_key
    from mlops_kit.local.worker import put_object, run_once

    b = backend()
    key = labels_key(model, file.name)
    out: dict[str, Any] = {"upload": put_object(b, key, file.read_bytes())}
    if b.settings.backend == "local":
        out["results"] = run_once(b)
    emit(out, as_json, _print_results)


def _print_results(d: dict) -> None:
    if "upload" in d:
        console.print(f"uploaded [bold]{d['upload']['key']}[/bold] ({d['upload']['size']} bytes)")
    for r in d.get("results", []):
        status = r.get("status")
        color = {"validated": "green", "registered": "green", "quarantined": "yellow",
                 "rejected": "red", "failed": "red"}.get(status, "white")
        line = f"[{color}]{status}[/{color}] {r.get('model', '')}"
        if "version" in r:
            line += f" v{r['version']}"
            if r.get("promoted"):
                line += " [bold green](champion)[/bold green]"
        if r.get("summary"):
            line += f" — {r['summary']}"
        if r.get("quarantine_key"):
            line += f" -> {r['quarantine_key']}"
        if r.get("reasons"):
            line += f" — {'; '.join(r['reasons'])}"
        if r.get("error"):
            line += f" — {r['error']}"
        if r.get("experiment"):  # a search: say what was tried (mlops-kit runs show M RUN)
            e = r["experiment"]
            line += (f" — run {r.get('run')}: best of {e['ok']}/{e['trials']} trials "
                     f"({e['metric']} {e['cv']:.4f}, trial {e['winner']})")
        console.print(line)


@app.command()
@handle_errors
def worker(once: bool = typer.Option(False, "--once", help="Drain the queues and exit."),
           poll: float = typer.Option(1.0, help="Seconds between polls."),
           as_json: bool = JsonOpt) -> None:
    """Process the validation and training queues (the local runtime)."""
    import time

    from mlops_kit.local.worker import run_once

    b = backend()
    if once:
        emit({"results": run_once(b)}, as_json, _print_results)
        return
    console.print("worker running; Ctrl-C to stop")
    try:
        while True:
            results = run_once(b)
            if results:
                _print_results({"results": results})
            time.sleep(poll)
    except KeyboardInterrupt:
        pass


