"""`mlops-kit serve | token | predict`: HTTP inference on the local runtime."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from mlops_kit.cli.common import (
    JsonOpt,
    UsageError,
    backend,
    console,
    emit,
    err,
    handle_errors,
    port_error,
    settings,
    to_json,
)

app = typer.Typer()


@app.command()
@handle_errors
def serve(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8080),
          no_auth: bool = typer.Option(False, "--no-auth",
                                       help="Allow anonymous requests (explicit opt-out)."),
          as_json: bool = JsonOpt) -> None:
    """Serve the champions over HTTP (KServe V1 + Open Inference Protocol V2) and the
    read-only web console at /ui/."""
    from mlops_kit.local.auth import TOKEN_FILE, ensure_token
    from mlops_kit.local.server import ServerThread, build_api

    b = backend()
    ws = Path(b.settings.workspace)
    token = None if no_auth else ensure_token(ws)
    try:
        srv = ServerThread(build_api(b, auth=not no_auth, workspace=ws), host, port)
    except OSError as exc:
        if token:  # made by this call and shown to nobody: a new token is never made in vain
            (ws / TOKEN_FILE).unlink(missing_ok=True)
        raise port_error(host, port, exc) from None
    if token and not as_json:
        err.print(f"[bold]API token (shown once, stored hashed):[/bold] {token}")
    srv.start()
    if as_json:  # one line a script can read: where to connect, and the token if new
        sys.stdout.write(to_json({"url": srv.url, "auth": not no_auth, "token": token},
                                 indent=None) + "\n")
        sys.stdout.flush()
    else:
        err.print(f"serving on {srv.url}  (POST /v1/models/<model>:predict; "
                  f"console: {srv.url}/ui/)")
    try:
        srv._threads[0].join()
    except KeyboardInterrupt:
        srv.stop()


@app.command()
@handle_errors
def token(rotate: bool = typer.Option(False, "--rotate"), as_json: bool = JsonOpt) -> None:
    """Create (or --rotate) the local server's bearer token; it is shown once."""
    from mlops_kit.local.auth import ensure_token, rotate_token

    ws = Path(settings().workspace)
    value = rotate_token(ws) if rotate else ensure_token(ws)
    if value is None:
        raise UsageError("a token already exists (stored hashed, never shown again); "
                         "use --rotate for a new one (running servers switch within a "
                         "second)", field="token")
    emit({"token": value}, as_json, lambda d: console.print(d["token"]))


@app.command()
@handle_errors
def predict(model: str = typer.Argument(...),
            data: str = typer.Option(None, "--data", "-d",
                                     help='JSON: {"instances": [...]} or one record.'),
            file: Path = typer.Option(None, "--file", "-f", exists=True),
            as_json: bool = JsonOpt) -> None:
    """Predict in-process with the champion (same code path as the server)."""
    from mlops_kit.core.serving.http_api import parse_json_body

    raw = file.read_bytes() if file else (data or "").encode()
    body = parse_json_body(raw)
    instances = body["instances"] if "instances" in body else [body]
    svc = backend().service(capture=False)
    out = svc.predict(model, instances)
    emit(out, as_json)


