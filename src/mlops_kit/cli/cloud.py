"""CLI commands for the cloud code path: `invoke` and `emulate`."""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import threading
from pathlib import Path

import typer

from mlops_kit.cli.common import (
    JsonOpt,
    UsageError,
    emit,
    err,
    handle_errors,
    port_error,
    state,
    to_json,
)
from mlops_kit.errors import MlopsKitError

app = typer.Typer()

FUNCTIONS = ["validate", "train", "serve", "monitor"]


@app.command()
@handle_errors
def invoke(
    function: str = typer.Argument(..., help=f"One of {', '.join(FUNCTIONS)}."),
    event: Path = typer.Option(..., "--event", "-e", exists=True, dir_okay=False,
                               help="A JSON event, e.g. events/http-api-v2-predict.json."),
    functions: Path = typer.Option(None, "--functions-dir", help="Default: ./functions."),
    as_json: bool = JsonOpt,
) -> None:
    """Run functions/FUNCTION.py's handler in-process on an event (like sam local invoke).

    Runs against the configured backend (MLOPSKIT_BACKEND: local, or aws with its names)."""
    from mlops_kit.emulate import context_for, load_function, reset_functions
    from mlops_kit.topology import default_topology

    if state.get("workspace"):
        os.environ["MLOPSKIT_WORKSPACE"] = str(state["workspace"])
    try:
        payload = json.loads(event.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{event}: not a JSON event ({exc})", field="event") from None
    try:
        module = load_function(function, functions)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc), field="function") from None
    reset_functions()
    topology = default_topology()
    name = function if function in FUNCTIONS else topology.functions[0].name
    try:
        result = module.handler(payload, context_for(topology, name))
    except MlopsKitError as exc:
        emit({"error": exc.message, "code": exc.code}, as_json)
        raise typer.Exit(1) from None
    except Exception as exc:  # noqa: BLE001 - what a failed Lambda invocation reports
        emit({"errorType": type(exc).__name__, "errorMessage": str(exc)}, as_json)
        raise typer.Exit(1) from None
    emit(result, as_json)


@app.command()
@handle_errors
def emulate(
    host: str = typer.Option("127.0.0.1", help="Interface for moto and the HTTP gateway."),
    port: int = typer.Option(0, help="Gateway port (0: a free one)."),
    monitor_every: float = typer.Option(
        None, "--monitor-every", min=0.5,
        help="Seconds between monitor runs (default: the topology's schedule)."),
    retry_after: int = typer.Option(
        5, "--retry-after", min=0,
        help="Seconds before a failed message is visible again (the visibility timeout)."),
    prefix: str = typer.Option("mlops-kit", help="Resource name prefix."),
    region: str = typer.Option("us-east-1"),
    functions: Path = typer.Option(None, "--functions-dir", help="Default: ./functions "
                                   "(aws), ./functions/azure (azure), else the installed handlers."),
    enforce_iam: bool = typer.Option(
        False, "--enforce-iam",
        help="moto checks every request: each function runs under its role's rendered policy; "
             "clients use the operator keys printed in the JSON line (\"credentials\")."),
    cloud: str = typer.Option("aws", "--cloud", help="aws (moto) or azure (Azurite; "
                              "--prefix, --region and --enforce-iam are AWS-only)."),
    as_json: bool = typer.Option(False, "--json", help="Errors as JSON too (the endpoints "
                                                        "line is always one JSON document)."),
) -> None:
    """Run the AWS code path locally (moto server, the topology's resources, the handlers).

    Prints one JSON line on stdout (endpoint, names, inference URL), then runs until
    SIGINT/SIGTERM. With --cloud azure: Azurite + the Azure Functions app in functions/azure;
    the JSON line carries the connection string and the bearer token for the inference URL.
    Needs the emulate extra: pip install 'mlops-kit\\[emulate]' (azure: also [azure])."""
    import logging

    if cloud not in ("aws", "azure"):
        raise UsageError(f"--cloud: {cloud[:40]!r} is not aws or azure", field="cloud")
    if cloud == "azure":
        emulate_azure(host, port, monitor_every, retry_after, functions)
        return

    from mlops_kit.emulate import Emulator

    logging.getLogger("mlops_kit.emulate.emulator").setLevel(logging.INFO)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
    emu = Emulator(host=host, gateway_port=port, monitor_every=monitor_every,
                   retry_after=retry_after, prefix=prefix, region=region, functions=functions,
                   enforce_iam=enforce_iam,
                   workspace=state.get("workspace"))  # where "Batch" jobs keep their state

    def started(resources) -> None:
        err.print(f"emulating on {resources.endpoint_url}; inference at "
                  f"{resources.inference_url}; Ctrl-C to stop")
        if enforce_iam:
            err.print("IAM enforced: use the operator keys in the JSON line's \"credentials\"")

    _run_until_signalled(emu, host, port, lambda r: r.summary(), started)


def _run_until_signalled(emu, host: str, port: int, summary, started) -> None:
    """Start an emulator, print its one JSON line (`summary` of what start() returned), say
    where it runs (`started`), then run until SIGINT/SIGTERM; a busy port is a message."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        try:
            running = emu.start()
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise port_error(host, port, exc) from None
            raise
        sys.stdout.write(to_json(summary(running), indent=None) + "\n")
        sys.stdout.flush()
        started(running)
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()


# -- emulate --cloud azure -------------------------------------------------------------------
def emulate_azure(host: str, port: int, monitor_every: float | None, retry_after: int,
                  functions: Path | None) -> None:
    """Azurite + the topology's containers, queues and table + the Azure Functions app
    (functions/azure): BlobCreated events for uploads reach the validate queue, the queue and
    timer triggers run, the HTTP triggers are served behind a bearer token. Prints one JSON
    line (connection string, names, inference URL, token), then runs until SIGINT/SIGTERM."""
    import logging

    from mlops_kit.emulate.azure_emulator import AzureEmulator

    logging.getLogger("mlops_kit.emulate.azure").setLevel(logging.INFO)
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDKs' per-request lines
    emu = AzureEmulator(host=host, gateway_port=port, monitor_every=monitor_every,
                        retry_after=retry_after, functions=functions)
    _run_until_signalled(emu, host, port, lambda summary: summary, lambda summary: err.print(
        f"emulating Azure on Azurite; inference at {summary['inference_url']}; Ctrl-C to stop"))
