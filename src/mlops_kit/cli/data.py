"""`mlops-kit upload | labels | score | worker`: data in, predictions out, and the local worker
that processes them.

Each shows its progress on stderr (one line per step with its time) and exits 1 when a job
failed: a dataset quarantined, training failed, a version rejected, labels rejected."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from mlops_kit.cli.common import (
    JsonOpt,
    backend,
    console,
    emit,
    err,
    exit_for,
    handle_errors,
    to_json,
)
from mlops_kit.cli.progress import Steps

app = typer.Typer()


def _process(b, steps: Steps) -> list[dict[str, Any]]:
    """Run the local worker until the queues are drained, with progress (steps.unfinished
    then says whether a job is still to be retried)."""
    from mlops_kit.local.worker import run_once

    b.ctx.progress = steps.core_step
    try:
        results = run_once(b, progress=steps.worker_event)
    finally:
        b.ctx.progress = None
    for r in results:
        _explain(b, r)
    return results


def _explain(b, r: dict[str, Any]) -> None:
    """A quarantine's failed rules (rule, column, count, examples) from its report."""
    key = r.get("quarantine_report_key") or r.get("report_key")
    if r.get("status") not in ("quarantined", "labels_quarantined") or not key:
        return
    try:
        report = json.loads(b.ctx.store.get(key))
    except Exception:  # noqa: BLE001 - the outcome stands without its details
        return
    r["failed_rules"] = [
        {"rule": x.get("rule"), "column": x.get("column"), "count": x.get("count"),
         "message": x.get("message"), "examples": (x.get("examples") or [])[:3]}
        for x in report.get("rules", []) if not x.get("passed", True)]


def _unused_columns(b, file: Path, model: str) -> list[str]:
    """The file's columns the stored spec does not use (a typo, a forgotten feature): named
    before the upload. No spec yet, or an unreadable file: nothing to say here (validation
    reports it)."""
    from mlops_kit.cli.spec import unused_columns
    from mlops_kit.core.context import load_spec

    try:
        spec = load_spec(b.ctx.store, model)
        return unused_columns(spec, file)
    except Exception:  # noqa: BLE001 - a warning only; the upload's own checks decide
        return []


@app.command()
@handle_errors
def upload(file: Path = typer.Argument(..., exists=True, dir_okay=False),
           model: str = typer.Option(..., "--model", "-m"),
           process: bool = typer.Option(True, help="Run the worker after uploading (local)."),
           as_json: bool = JsonOpt) -> None:
    """Upload a dataset to datasets/<model>/ (starts validation -> training).

    Exits 1 if the dataset was quarantined, training failed or the version was rejected."""
    from mlops_kit.local.worker import upload as do_upload

    b = backend()
    unused = _unused_columns(b, file, model)
    if unused:
        err.print(f"[yellow]warning[/yellow]: {len(unused)} column(s) of {file.name} are not in "
                  f"the spec of {model} and will be ignored: {unused[:20]}", highlight=False,
                  soft_wrap=True)
    with Steps(err) as steps:
        steps.begin(f"uploading {file.name}")
        up = do_upload(b, file, model)
        steps.end("uploaded", f"uploaded {up['key']} ({up['size']:,} bytes)")
        out: dict[str, Any] = {"upload": up}
        if process and b.settings.backend == "local":
            out["results"] = _process(b, steps)
    out["steps"] = steps.record
    if unused:
        out["warnings"] = [f"columns not in the spec are ignored: {unused}"]
    emit(out, as_json, _print_results)
    exit_for(out.get("results", []), unfinished=steps.unfinished)


@app.command()
@handle_errors
def labels(file: Path = typer.Argument(..., exists=True, dir_okay=False),
           model: str = typer.Option(..., "--model", "-m"), as_json: bool = JsonOpt) -> None:
    """Upload late ground truth (request_id + target column) to labels/<model>/.

    Exits 1 (and says why) if the labels file is rejected."""
    from mlops_kit.core.layout import labels_key

    b = backend()
    _put_and_process(b, labels_key(model, file.name), file, as_json)


def _put_and_process(b, key: str, file: Path, as_json: bool,
                     before: Callable[[], None] | None = None) -> None:
    """Write the file at `key` (announced as the cloud would), run the local worker, print,
    and exit 1 if a job failed. `before` runs first (what the upload must find in place)."""
    from mlops_kit.local.worker import put_object

    with Steps(err) as steps:
        steps.begin(f"uploading {file.name}")
        if before is not None:
            before()
        out: dict[str, Any] = {"upload": put_object(b, key, file)}  # streamed
        steps.end("uploaded", f"uploaded {key} ({out['upload']['size']:,} bytes)")
        if b.settings.backend == "local":
            out["results"] = _process(b, steps)
    out["steps"] = steps.record
    emit(out, as_json, _print_results)
    exit_for(out.get("results", []), unfinished=steps.unfinished)


@app.command()
@handle_errors
def score(file: Path = typer.Argument(..., exists=True, dir_okay=False),
          model: str = typer.Option(..., "--model", "-m"),
          version: int | None = typer.Option(None, "--version", min=1,
                                             help="Score with this version (default: champion)."),
          alias: str | None = typer.Option(None, "--alias",
                                           help="Score with the version an alias points at."),
          keep: list[str] = typer.Option([], "--keep",  # noqa: B008 - typer's idiom
                                         help="An input column to copy to the output "
                                              "(an id); repeat for more."),
          as_json: bool = JsonOpt) -> None:
    """Batch scoring: upload a CSV or Parquet file of records to scoring/<model>/; the
    predictions land in predictions/<model>/<name>/ (Parquet parts, rejects.parquet and
    _manifest.json, written last). Rows that break the spec are rejected with the rule, never
    scored; a file that cannot be read is quarantined.

    Exits 1 if the job failed or the file was quarantined (rejected rows alone do not fail it)."""
    from mlops_kit.cli.common import UsageError
    from mlops_kit.core.layout import scoring_key, scoring_options_key

    if version is not None and alias is not None:
        raise UsageError("give --version or --alias, not both", field="version")
    if file.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise UsageError(f"{file.name}: score a .csv or .parquet file", field="file")
    b = backend()
    key = scoring_key(model, file.name)
    opts: dict[str, Any] = {"keep": keep} if keep else {}
    if version is not None:
        opts["version"] = version
    if alias is not None:
        opts["alias"] = alias
    options_key = scoring_options_key(model, file.name.rsplit(".", 1)[0])

    def options_first() -> None:  # the file's upload starts the job: its options go first
        if opts or b.ctx.store.exists(options_key):
            b.ctx.store.put(options_key, to_json(opts).encode(), content_type="application/json")

    _put_and_process(b, key, file, as_json, options_first)


def _print_results(d: dict) -> None:
    if "upload" in d:
        console.print(f"uploaded [bold]{escape(d['upload']['key'])}[/bold] "
                      f"({d['upload']['size']} bytes)")
    for r in d.get("results", []):
        status = r.get("status")
        color = {"validated": "green", "registered": "green", "labels_received": "green",
                 "scored": "green",
                 "quarantined": "yellow"}.get(status, "red" if status in (
                     "rejected", "failed", "labels_rejected", "labels_quarantined") else "white")
        line = f"[{color}]{status}[/{color}] {escape(str(r.get('model', '')))}"
        if r.get("type") == "job":  # a training job on the batch engine ended
            line += f" (job {escape(str(r.get('job_status')))})"
        if "version" in r:
            line += f" v{r['version']}"
            if r.get("promoted"):
                line += " [bold green](champion)[/bold green]"
        if r.get("duplicate"):
            line += " (already processed)"
        if r.get("summary"):
            line += f" — {escape(str(r['summary']))}"
        if r.get("quarantine_key"):
            line += f" -> {escape(r['quarantine_key'])}"
        for why in (r.get("reason"), "; ".join(r.get("reasons") or []), r.get("error")):
            if why:
                line += f" — {escape(str(why))}"
        if status == "scored":
            line += (f" — {r.get('rows_scored'):,} rows scored, {r.get('rows_rejected'):,} "
                     f"rejected -> {escape(str(r.get('manifest_key') or ''))}")
        if r.get("experiment"):  # a search: say what was tried (mlops-kit runs show M RUN)
            e = r["experiment"]
            line += (f" — run {r.get('run')}: best of {e['ok']}/{e['trials']} trials "
                     f"({e['metric']} {e['cv']:.4f}, trial {e['winner']})")
        if status == "submitted":
            what = "scoring" if str(r.get("key", "")).startswith("scoring/") else "training"
            line += escape(f" — {what} on {r.get('engine')}: {r.get('route')}")
        console.print(line, soft_wrap=True)
        if r.get("failed_rules"):
            t = Table("rule", "column", "count", "examples (row: value)",
                      title=f"why: {r.get('quarantine_report_key') or 'report'}")
            for x in r["failed_rules"]:
                ex = ", ".join(f"{e.get('row')}: {e.get('value')}" for e in x.get("examples") or [])
                t.add_row(*(escape(str(c)) for c in (x["rule"], x.get("column") or "-",
                                                      x.get("count"), ex or x.get("message") or "")))
            console.print(t)


def _waiting_on(b) -> None:
    """After a crash: say which messages a dead worker still holds, and when they come back
    (they are invisible until their visibility timeout ends)."""
    for queue in (b.validate_queue, b.ctx.train_queue):
        lister = getattr(queue, "pending_messages", None)
        for m in lister() if lister is not None else ():
            if m.get("holder_alive") is False:
                body = m.get("body") or {}
                what = body.get("dataset_key") or body.get("key") or m["id"]
                err.print(f"waiting on {queue.name} message {escape(str(what))} (attempt "
                          f"{m['attempts']}), held by worker pid {m['holder_pid']}, which is "
                          f"gone: it comes back in {m['visible_in_s']:.0f} s", soft_wrap=True)


@app.command()
@handle_errors
def worker(once: bool = typer.Option(False, "--once", help="Drain the queues and exit."),
           poll: float = typer.Option(1.0, help="Seconds between polls."),
           as_json: bool = JsonOpt) -> None:
    """Process the validation and training queues (the local runtime).

    With --once, exits 1 if any job failed."""
    import time

    b = backend()
    _waiting_on(b)
    if once:
        with Steps(err) as steps:
            results = _process(b, steps)
        emit({"results": results, "steps": steps.record}, as_json, _print_results)
        exit_for(results, unfinished=steps.unfinished)
        return
    err.print("worker running; Ctrl-C to stop")
    try:
        while True:
            with Steps(err) as steps:
                results = _process(b, steps)
            if results:
                if as_json:  # a stream: one JSON document per line, per round
                    print(to_json({"results": results}, indent=None), flush=True)
                else:
                    _print_results({"results": results})
            time.sleep(poll)
    except KeyboardInterrupt:
        pass
