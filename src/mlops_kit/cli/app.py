"""`mlops-kit`: the operator's CLI (typer + rich). Every command takes --json for one
machine-readable JSON document on stdout; human output and progress go through rich.

This module only assembles: each command group lives in its own module and never imports
this one back."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer

from mlops_kit.cli import cloud, data, demo, monitor, registry, retire, runs, serving, spec, work
from mlops_kit.cli.common import EXIT_FAILED, report_unexpected, state

EPILOG = (
    "Exit codes: 0 done; 1 the job failed (dataset quarantined, training failed, version "
    "rejected, labels rejected) or an unexpected error; 2 usage (bad arguments, bad spec, "
    "unknown model, missing extra or setting).\n\n"
    "--json prints exactly one strict JSON document on stdout (no NaN/Infinity: null); "
    "progress and messages go to stderr."
)

app = typer.Typer(help="Serverless MLOps kit: validate, train, register, serve, monitor.",
                  epilog=EPILOG, no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(spec.app, name="spec")
app.add_typer(registry.app, name="registry")
assert retire.app is registry.app  # registry archive|delete|unserve (cli/retire.py)
app.add_typer(runs.app, name="runs")
for group in (data, serving, monitor, cloud, demo, work):
    app.add_typer(group.app)  # no name: their commands sit at the top level


def _check_workspace(path: Path | None) -> Path | None:
    """A usable workspace folder, or a usage error naming the problem (not a traceback)."""
    if path is None:
        return None
    if path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{path} exists and is not a folder", param_hint="'--workspace'")
    parent = path
    while not parent.exists():  # the folder is created on first use: its parent must allow it
        parent = parent.parent
    if not parent.is_dir():
        raise typer.BadParameter(f"{parent} is not a folder", param_hint="'--workspace'")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise typer.BadParameter(f"{parent} is not writable", param_hint="'--workspace'")
    return path


@app.callback(epilog=EPILOG)
def _main(
    workspace: Path = typer.Option(None, "--workspace", "-w", envvar="MLOPSKIT_WORKSPACE",
                                   help="Local backend folder (default .mlops-kit)."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Log to stderr; show tracebacks of unexpected errors."),
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    state["verbose"] = verbose
    state["workspace"] = _check_workspace(workspace)


def main(argv: list[str] | None = None) -> None:
    """The console script. Anything that escapes a command is one line and exit 1."""
    try:
        app(args=argv, prog_name="mlops-kit")
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last guard: a message, never a traceback
        args = argv if argv is not None else sys.argv[1:]
        sys.exit(report_unexpected(exc, "--json" in args) or EXIT_FAILED)


if __name__ == "__main__":
    main()
