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
          workers: int = typer.Option(
              None, "--workers", min=1,
              help="Worker processes (default: 1 on loopback, else the CPU count)."),
          grace: int = typer.Option(30, "--grace", min=1,
                                    help="Seconds in-flight requests get after SIGTERM."),
          certfile: Path = typer.Option(None, "--certfile", exists=True, dir_okay=False,
                                        help="TLS certificate (PEM); with --keyfile."),
          keyfile: Path = typer.Option(None, "--keyfile", exists=True, dir_okay=False,
                                       help="TLS private key (PEM, PKCS#8)."),
          pin_cpus: bool = typer.Option(
              None, "--pin-cpus/--no-pin-cpus",
              help="Run each worker on a CPU of its own (default: on when there is one worker "
                   "per CPU; 1.35-1.5x the 1-worker throughput at c=1, bench/http_load.py)."),
          durable_capture: bool = typer.Option(
              False, "--durable-capture",
              help="Spool each capture to disk (fsync) before answering: none lost even to "
                   "SIGKILL (MLOPSKIT_CAPTURE_DURABLE)."),
          as_json: bool = JsonOpt) -> None:
    """Serve the champions over HTTP (KServe V1 + Open Inference Protocol V2) and the
    read-only web console at /ui/. SIGTERM or SIGINT: stop accepting, answer the requests in
    flight (up to --grace seconds), write the buffered captures, exit 0."""
    import ipaddress
    import os

    from mlops_kit.local.auth import TOKEN_FILE, ensure_token
    from mlops_kit.local.server import (
        ServeConfig,
        allowed_cpus,
        check_port,
        free_port,
        pin_workers_by_default,
        run_server,
    )

    if durable_capture:  # read by each worker's Settings
        os.environ["MLOPSKIT_CAPTURE_DURABLE"] = "true"
    if (certfile is None) != (keyfile is None):
        raise UsageError("--certfile and --keyfile go together", field="certfile")
    b = backend()
    ws = Path(b.settings.workspace).resolve()
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    n_workers = workers or (1 if loopback else len(allowed_cpus()))
    pin = pin_workers_by_default(n_workers) if pin_cpus is None else pin_cpus
    token = None if no_auth else ensure_token(ws)
    try:
        port = port or free_port(host)
        check_port(host, port)
    except OSError as exc:
        if token:  # made by this call and shown to nobody: a new token is never made in vain
            (ws / TOKEN_FILE).unlink(missing_ok=True)
        raise port_error(host, port, exc) from None
    scheme = "https" if certfile else "http"
    url = f"{scheme}://{host if ':' not in host else f'[{host}]'}:{port}"
    if no_auth and not loopback:
        err.print(f"[bold red]warning:[/bold red] serving on {host} with --no-auth: anyone who "
                  "can reach this address can call the models and read the console")
    if not certfile and not loopback:
        err.print(f"[yellow]note:[/yellow] plain HTTP on {host}: put TLS in front "
                  "(--certfile/--keyfile, or a load balancer)")
    if token and not as_json:
        err.print(f"[bold]API token (shown once, stored hashed):[/bold] {token}")

    def ready() -> None:  # said once the port accepts connections
        if as_json:  # one line a script can read: where to connect, and the token if new
            sys.stdout.write(to_json({"url": url, "auth": not no_auth, "token": token,
                                      "workers": n_workers, "pinned": pin},
                                     indent=None) + "\n")
            sys.stdout.flush()
        else:
            err.print(f"serving on {url} with {n_workers} worker(s)  (POST "
                      f"/v1/models/<model>:predict; console: {url}/ui/)")

    run_server(ServeConfig(workspace=str(ws), auth=not no_auth, pin_cpus=pin), host, port,
               workers=n_workers, grace_s=grace, certfile=certfile, keyfile=keyfile,
               on_ready=ready)


@app.command()
@handle_errors
def token(rotate: bool = typer.Option(False, "--rotate"), as_json: bool = JsonOpt) -> None:
    """Create (or --rotate) the local server's bearer token; it is shown once. On AWS
    (MLOPSKIT_BACKEND=aws), --rotate writes a new console cookie key to SSM: every console
    session ends (within a minute), and the key itself is never shown."""
    from mlops_kit.local.auth import ensure_token, rotate_token

    s = settings()
    if s.backend == "aws":
        _rotate_console_key(s, rotate, as_json)
        return
    ws = Path(s.workspace)
    value = rotate_token(ws) if rotate else ensure_token(ws)
    if value is None:
        raise UsageError("a token already exists (stored hashed, never shown again); "
                         "use --rotate for a new one (running servers switch within a "
                         "second)", field="token")
    emit({"token": value}, as_json, lambda d: console.print(d["token"]))


def _rotate_console_key(s, rotate: bool, as_json: bool) -> None:
    from mlops_kit.adapters.aws import client
    from mlops_kit.adapters.aws.ssm import SsmCookieKey

    if not rotate:
        raise UsageError("on AWS there is no token to show: the console signs in with OIDC; "
                         "use --rotate to replace the console's cookie key", field="rotate")
    if not s.console_key_parameter:
        raise UsageError("MLOPSKIT_CONSOLE_KEY_PARAMETER is not set: use the stack output "
                         "console_cookie_key_parameter (pulumi stack output ...); the stack "
                         "needs consoleAuth cognito or oidc", field="console_key_parameter")
    key = SsmCookieKey(s.console_key_parameter, lambda: client(
        "ssm", region=s.region, endpoint_url=s.endpoint_url))
    key.rotate()
    emit({"rotated": "console cookie key", "parameter": s.console_key_parameter,
          "sessions_end_within_s": int(key.ttl_s)}, as_json,
         lambda d: console.print(f"console cookie key rotated in {d['parameter']}: every "
                                 f"session ends within {d['sessions_end_within_s']} s"))


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


