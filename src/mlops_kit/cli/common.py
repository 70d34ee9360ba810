"""What every command module shares: the console, the --json option, settings and backend
from the global options, strict JSON output, and the one error decorator that maps
MlopsKitError to a message and an exit code. Command modules import this, never the app."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from mlops_kit.errors import MlopsKitError
from mlops_kit.settings import Settings

console = Console(stderr=False)
err = Console(stderr=True)
state: dict[str, Any] = {}

JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout.")
F = TypeVar("F", bound=Callable[..., Any])


def settings() -> Settings:
    s = Settings()
    if state.get("workspace"):
        s = s.model_copy(update={"workspace": state["workspace"]})
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


def handle_errors(fn: F) -> F:
    """A command's MlopsKitError becomes a one-line message (or a JSON error document with
    --json) and an exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MlopsKitError as exc:
            fail(exc, bool(kwargs.get("as_json")))

    return wrapper  # type: ignore[return-value]
