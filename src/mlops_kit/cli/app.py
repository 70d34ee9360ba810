"""`mlops-kit`: the operator's CLI (typer + rich). Every command takes --json for one
machine-readable JSON document on stdout; human output goes through rich."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from mlops_kit.errors import MlopsKitError
from mlops_kit.settings import Settings

app = typer.Typer(help="Serverless MLOps kit: validate, train, register, serve, monitor.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
spec_app = typer.Typer(help="Model specs (specs/<model>.yaml).", no_args_is_help=True)
registry_app = typer.Typer(help="The model registry: versions, aliases, history.",
                           no_args_is_help=True)
app.add_typer(spec_app, name="spec")
app.add_typer(registry_app, name="registry")

console = Console(stderr=False)
err = Console(stderr=True)
_state: dict[str, Any] = {}

JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout.")


@app.callback()
def _main(
    workspace: Path = typer.Option(None, "--workspace", "-w", envvar="MLOPSKIT_WORKSPACE",
                                   help="Local backend folder (default .mlops-kit)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    _state["workspace"] = workspace


def settings() -> Settings:
    s = Settings()
    if _state.get("workspace"):
        s = s.model_copy(update={"workspace": _state["workspace"]})
    return s


def backend():
    from mlops_kit.bootstrap import build_backend

    return build_backend(settings())


def emit(data: Any, as_json: bool, human=None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str, sort_keys=True) + "\n")
    elif human is not None:
        human(data)
    else:
        console.print_json(json.dumps(data, default=str))


def fail(exc: MlopsKitError, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"error": exc.message, "code": exc.code,
                                     "field": exc.field}) + "\n")
    else:
        err.print(f"[red]error:[/red] {exc.message}")
    raise typer.Exit(2 if exc.status < 500 else 1)


# -- spec ------------------------------------------------------------------------------


@spec_app.command("apply")
def spec_apply(file: Path = typer.Argument(..., exists=True, dir_okay=False),
               as_json: bool = JsonOpt) -> None:
    """Check a spec and store it under specs/<name>.yaml."""
    from mlops_kit.core.spec import load_spec_bytes

    try:
        raw = file.read_bytes()
        spec = load_spec_bytes(raw, source=str(file))
        b = backend()
        suffix = ".json" if raw.lstrip().startswith(b"{") else ".yaml"
        for old in (".yaml", ".yml", ".json"):
            if old != suffix:
                b.ctx.store.delete(f"specs/{spec.name}{old}")
        key = f"specs/{spec.name}{suffix}"
        b.ctx.store.put(key, raw)
    except MlopsKitError as exc:
        fail(exc, as_json)
    out = {"model": spec.name, "key": key, "spec_hash": spec.spec_hash(),
           "task": spec.task.value, "features": len(spec.features)}
    emit(out, as_json, lambda d: console.print(
        f"[green]applied[/green] spec [bold]{d['model']}[/bold] -> {d['key']} "
        f"({d['task']}, {d['features']} features)"))


@spec_app.command("check")
def spec_check(file: Path = typer.Argument(..., exists=True, dir_okay=False),
               as_json: bool = JsonOpt) -> None:
    """Check a spec file without storing it."""
    from mlops_kit.core.spec import load_spec_bytes

    try:
        spec = load_spec_bytes(file.read_bytes(), source=str(file))
    except MlopsKitError as exc:
        fail(exc, as_json)
    emit({"model": spec.name, "valid": True, "spec_hash": spec.spec_hash()}, as_json,
         lambda d: console.print(f"[green]valid[/green] spec {d['model']}"))


# -- data ------------------------------------------------------------------------------


@app.command()
def upload(file: Path = typer.Argument(..., exists=True, dir_okay=False),
           model: str = typer.Option(..., "--model", "-m"),
           process: bool = typer.Option(True, help="Run the worker once after uploading."),
           as_json: bool = JsonOpt) -> None:
    """Upload a dataset to datasets/<model>/ (starts validation -> training)."""
    from mlops_kit.local.worker import run_once
    from mlops_kit.local.worker import upload as do_upload

    try:
        b = backend()
        out: dict[str, Any] = {"upload": do_upload(b, file, model)}
        if process and b.settings.backend == "local":
            out["results"] = run_once(b)
    except MlopsKitError as exc:
        fail(exc, as_json)
    emit(out, as_json, _print_results)


@app.command()
def labels(file: Path = typer.Argument(..., exists=True, dir_okay=False),
           model: str = typer.Option(..., "--model", "-m"), as_json: bool = JsonOpt) -> None:
    """Upload late ground truth (request_id + target column) to labels/<model>/."""
    from mlops_kit.core.layout import LABELS, safe_filename
    from mlops_kit.core.spec import check_name
    from mlops_kit.local.worker import put_object, run_once

    try:
        b = backend()
        key = f"{LABELS}{check_name(model)}/{safe_filename(file.name)}"
        out: dict[str, Any] = {"upload": put_object(b, key, file.read_bytes())}
        if b.settings.backend == "local":
            out["results"] = run_once(b)
    except MlopsKitError as exc:
        fail(exc, as_json)
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
        console.print(line)


@app.command()
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


# -- serving ---------------------------------------------------------------------------


@app.command()
def serve(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8080),
          no_auth: bool = typer.Option(False, "--no-auth",
                                       help="Allow anonymous requests (explicit opt-out)."),
          as_json: bool = JsonOpt) -> None:
    """Serve the champions over HTTP (KServe V1 + Open Inference Protocol V2)."""
    from mlops_kit.local.auth import ensure_token
    from mlops_kit.local.server import ServerThread, build_api

    b = backend()
    ws = Path(b.settings.workspace)
    token = None
    if not no_auth:
        token = ensure_token(ws)
        if token and not as_json:
            err.print(f"[bold]API token (shown once, stored hashed):[/bold] {token}")
    srv = ServerThread(build_api(b, auth=not no_auth, workspace=ws), host, port).start()
    if as_json:  # one line a script can read: where to connect, and the token if new
        sys.stdout.write(json.dumps({"url": srv.url, "auth": not no_auth, "token": token}) + "\n")
        sys.stdout.flush()
    else:
        err.print(f"serving on {srv.url}  (POST /v1/models/<model>:predict)")
    try:
        srv._threads[0].join()
    except KeyboardInterrupt:
        srv.stop()


@app.command()
def token(rotate: bool = typer.Option(False, "--rotate"), as_json: bool = JsonOpt) -> None:
    """Create (or --rotate) the local server's bearer token; it is shown once."""
    from mlops_kit.local.auth import ensure_token, rotate_token

    ws = Path(settings().workspace)
    value = rotate_token(ws) if rotate else ensure_token(ws)
    if value is None:
        err.print("a token already exists (stored hashed); use --rotate for a new one")
        raise typer.Exit(1)
    emit({"token": value}, as_json, lambda d: console.print(d["token"]))


@app.command()
def predict(model: str = typer.Argument(...),
            data: str = typer.Option(None, "--data", "-d",
                                     help='JSON: {"instances": [...]} or one record.'),
            file: Path = typer.Option(None, "--file", "-f", exists=True),
            as_json: bool = JsonOpt) -> None:
    """Predict in-process with the champion (same code path as the server)."""
    from mlops_kit.core.serving.http_api import parse_json_body

    try:
        raw = file.read_bytes() if file else (data or "").encode()
        body = parse_json_body(raw)
        instances = body["instances"] if "instances" in body else [body]
        svc = backend().service(capture=False)
        out = svc.predict(model, instances)
    except MlopsKitError as exc:
        fail(exc, as_json)
    emit(out, as_json)


# -- registry --------------------------------------------------------------------------


def _registry():
    return backend().ctx.registry


@registry_app.command("list")
def registry_list(as_json: bool = JsonOpt) -> None:
    """Models with their champion and latest version."""
    reg = _registry()
    rows = []
    for name in reg.list_models():
        versions = reg.list_versions(name)
        champ = reg.get_alias(name, "champion") or {}
        chall = reg.get_alias(name, "challenger") or {}
        rows.append({"model": name, "versions": len(versions),
                     "latest": versions[-1]["version"] if versions else None,
                     "champion": champ.get("version"), "challenger": chall.get("version")})

    def human(rows):
        t = Table("model", "versions", "latest", "champion", "challenger")
        for r in rows:
            t.add_row(r["model"], str(r["versions"]), str(r["latest"]), str(r["champion"]),
                      str(r["challenger"]))
        console.print(t)

    emit(rows, as_json, human)


@registry_app.command("versions")
def registry_versions(model: str, as_json: bool = JsonOpt) -> None:
    """All versions of a model with status, metrics and parity."""
    try:
        reg = _registry()
        versions = reg.list_versions(model)
        champ = reg.champion_version(model)
    except MlopsKitError as exc:
        fail(exc, as_json)

    def human(vs):
        t = Table("version", "status", "metrics", "parity", "created", "")
        for v in vs:
            m = ", ".join(f"{k}={val:.3f}" for k, val in (v.get("metrics") or {}).items())
            parity = v.get("parity") or {}
            t.add_row(str(v["version"]), v["status"], m,
                      "ok" if parity.get("passed") else str(parity.get("reason", "-"))[:30],
                      str(v.get("created_at", ""))[:19],
                      "champion" if v["version"] == champ else "")
        console.print(t)

    emit(versions, as_json, human)


@registry_app.command("show")
def registry_show(model: str, version: int = typer.Argument(None),
                  as_json: bool = JsonOpt) -> None:
    """One version (default: the champion) with its lineage."""
    try:
        reg = _registry()
        version = version or reg.champion_version(model)
        if version is None:
            raise MlopsKitError(f"model {model!r} has no champion; give a version")
        record = reg.get_version(model, version)
    except MlopsKitError as exc:
        fail(exc, as_json)
    emit(record, as_json)


@registry_app.command("history")
def registry_history(model: str, as_json: bool = JsonOpt) -> None:
    """What was in production when: every alias move, oldest first."""
    try:
        events = _registry().history(model)
    except MlopsKitError as exc:
        fail(exc, as_json)

    def human(evs):
        t = Table("at", "action", "alias", "from", "to", "actor", "reason")
        for e in evs:
            t.add_row(str(e["at"])[:19], e["action"], str(e.get("alias") or ""),
                      str(e.get("from_version")), str(e.get("to_version")), e.get("actor", ""),
                      str(e.get("reason", ""))[:60])
        console.print(t)

    emit(events, as_json, human)


@registry_app.command("promote")
def registry_promote(model: str, version: int,
                     reason: str = typer.Option("manual promotion", "--reason"),
                     actor: str = typer.Option("cli", "--actor"),
                     as_json: bool = JsonOpt) -> None:
    """Make a registered version the champion."""
    try:
        out = _registry().promote(model, version, actor=actor, reason=reason)
    except MlopsKitError as exc:
        fail(exc, as_json)
    emit(out, as_json, lambda d: console.print(
        f"[green]{model}[/green] champion: v{d['previous']} -> v{d['version']}"))


@registry_app.command("approve")
def registry_approve(model: str, version: int, actor: str = typer.Option("cli", "--actor"),
                     promote: bool = typer.Option(True, help="Promote after approving."),
                     as_json: bool = JsonOpt) -> None:
    """Approve a version that the spec's promotion policy holds for manual approval."""
    try:
        reg = _registry()
        record = reg.update_version(model, version, {"approved": True, "approved_by": actor,
                                                     "approved_at": reg.clock.now().isoformat()},
                                    actor)
        out: dict[str, Any] = {"approved": record}
        gates = record.get("gates", {})
        blocking = [r for r in record.get("reasons") or []]
        if promote and not blocking:
            out["promoted"] = reg.promote(model, version, actor=actor,
                                          reason="approved and passed the promotion policy")
        elif promote:
            out["not_promoted"] = blocking
        out["gates"] = gates
    except MlopsKitError as exc:
        fail(exc, as_json)
    emit(out, as_json)


@registry_app.command("rollback")
def registry_rollback(model: str, reason: str = typer.Option("rollback", "--reason"),
                      actor: str = typer.Option("cli", "--actor"), as_json: bool = JsonOpt) -> None:
    """Restore the previous champion in one call."""
    try:
        out = _registry().rollback(model, actor=actor, reason=reason)
    except MlopsKitError as exc:
        fail(exc, as_json)
    emit(out, as_json, lambda d: console.print(
        f"[yellow]{model}[/yellow] rolled back: v{d['previous']} -> v{d['version']}"))


@registry_app.command("challenger")
def registry_challenger(model: str, version: int = typer.Argument(None),
                        mode: str = typer.Option("canary", help="canary or shadow"),
                        weight: float = typer.Option(0.1, min=0.0, max=1.0),
                        actor: str = typer.Option("cli", "--actor"),
                        as_json: bool = JsonOpt) -> None:
    """Set (or clear, with no version) the challenger: canary share or shadow scoring."""
    if mode not in ("canary", "shadow"):
        fail(MlopsKitError("mode: must be canary or shadow", field="mode"), as_json)
    try:
        out = _registry().set_alias(model, "challenger", version, actor=actor,
                                    reason=f"{mode} {weight:.0%}" if version else "cleared",
                                    extra={"mode": mode, "weight": weight})
    except MlopsKitError as exc:
        fail(exc, as_json)
    emit(out, as_json)


# -- monitoring ------------------------------------------------------------------------


@app.command()
def monitor(model: str, window_hours: float = typer.Option(None, "--window-hours"),
            as_json: bool = JsonOpt) -> None:
    """Run monitoring now: drift and live quality over captured requests."""
    from mlops_kit.core.monitoring.monitor import run_monitor
    from mlops_kit.local.worker import announcer

    try:
        b = backend()
        report = run_monitor(b.ctx, model, window_hours=window_hours,
                             announce=announcer(b) if b.settings.backend == "local" else None)
    except MlopsKitError as exc:
        fail(exc, as_json)

    def human(r):
        if r.get("status") != "ok":
            console.print(f"{model}: {r.get('status')} — {r.get('reason', '')}")
            return
        drift = r["drift"]
        t = Table("feature", "type", "psi", "drifted", "reasons")
        for name, f in drift["features"].items():
            t.add_row(name, f["type"], f"{f['psi']:.3f}",
                      "[red]yes[/red]" if f["drifted"] else "no", "; ".join(f.get("reasons", [])))
        console.print(t)
        console.print(f"rows {r['rows']}  drifted: {'[red]yes[/red]' if r['drifted'] else 'no'}"
                      f"  report: {r['report_key']}")

    emit(report, as_json, human)


def main() -> None:
    from mlops_kit.cli import cloud as cloud_cli
    from mlops_kit.cli import demo
    from mlops_kit.cli import monitor as monitor_cli

    app()


if __name__ == "__main__":  # `python -m mlops_kit.cli.app`: run the importable module's app
    from mlops_kit.cli.app import main as _main

    _main()
