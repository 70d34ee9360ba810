"""`mlops-kit`: the operator's CLI (typer + rich). Every command takes --json for one
machine-readable JSON document on stdout; human output goes through rich.

This module only assembles: each command group lives in its own module and never imports
this one back."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from mlops_kit.cli import cloud, data, demo, monitor, registry, runs, serving, spec
from mlops_kit.cli.common import state

app = typer.Typer(help="Serverless MLOps kit: validate, train, register, serve, monitor.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(spec.app, name="spec")
app.add_typer(registry.app, name="registry")
app.add_typer(runs.app, name="runs")
for group in (data, serving, monitor, cloud, demo):
    app.add_typer(group.app)  # no name: their commands sit at the top level


@app.callback()
def _main(
    workspace: Path = typer.Option(None, "--workspace", "-w", envvar="MLOPSKIT_WORKSPACE",
                                   help="Local backend folder (default .mlops-kit)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    state["workspace"] = workspace


def main() -> None:
    app()


if __name__ == "__main__":
    main()
