"""What every command module shares: the console, the --json option, settings and backend
from the global options, strict JSON output, exit codes, and the one error decorator that turns
any failure into a one-line message (or a JSON error document) and an exit code, never a
traceback. Command modules import this, never the app."""

from __future__ import annotations

import functools
import json
import math
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from mlops_kit.errors import BreakingChange, ConfigError, MlopsKitError
from mlops_kit.settings import Settings

console = Console(stderr=False)
err = Console(stderr=True)
state: dict[str, Any] = {}

# Exit codes (documented in `mlops-kit --help` and the README).
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Job outcomes that mean "the job failed": exit 1.
FAILED_STATUSES = frozenset({"quarantined", "rejected", "failed", "labels_rejected",
                             "labels_quarantined"})

class UsageError(MlopsKitError):
    """The command cannot run as asked (busy port, existing token, ...): exit 2."""

    status = 400
    code = "usage"


# What typer/click raise to end a command on purpose: never caught (typer may vendor click).
_CLICK_ENDS: tuple[type[BaseException], ...] = (
    typer.Exit, typer.Abort,
    *(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"))

JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout.")
F = TypeVar("F", bound=Callable[..., Any])

# A missing import -> the extra that installs it.
EXTRAS = {"boto3": "aws", "botocore": "aws", "aws_lambda_powertools": "aws", "moto": "emulate",
          "flask": "emulate", "werkzeug": "emulate", "flask_cors": "emulate", "pulumi": "infra",
          "pulumi_aws": "infra", "pulumi_docker_build": "infra", "azure": "azure",
          "pulumi_azure_native": "azure-infra"}


def settings() -> Settings:
    try:
        s = Settings()
    except Exception as exc:  # noqa: BLE001 - pydantic names the field; we name the variable
        raise ConfigError(_settings_message(exc), field="settings") from None
    if state.get("workspace"):
        s = s.model_copy(update={"workspace": state["workspace"]})
    return s


def _settings_message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = [f"MLOPSKIT_{str(e['loc'][0]).upper()}: {e['msg']}" for e in errors() if e["loc"]]
        if parts:
            return "bad setting: " + "; ".join(parts)
    return f"bad settings: {exc}"


def backend():
    from mlops_kit.bootstrap import build_backend

    s = settings()
    try:
        return build_backend(s)
    except OSError as exc:
        if s.backend != "local":
            raise
        raise ConfigError(f"--workspace {s.workspace}: cannot be created or opened "
                          f"({exc.strerror or exc})", field="workspace") from None


# -- output ------------------------------------------------------------------------------
def finite(data: Any) -> Any:
    """A JSON-safe copy: NaN and +-Infinity become null (they are not JSON), tuples become
    lists, numpy scalars their Python value."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, Mapping):
        return {str(k): finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple, set, frozenset)):
        return [finite(v) for v in data]
    item = getattr(data, "item", None)  # numpy scalars
    if callable(item) and type(data).__module__ == "numpy":
        try:
            return finite(item())
        except (TypeError, ValueError):
            pass
    return data


def to_json(data: Any, *, indent: int | None = 2) -> str:
    """Strict JSON (RFC 8259): never NaN or Infinity."""
    return json.dumps(finite(data), indent=indent, default=str, sort_keys=True, allow_nan=False)


def emit(data: Any, as_json: bool, human=None) -> None:
    if as_json:
        sys.stdout.write(to_json(data) + "\n")
        sys.stdout.flush()
    elif human is not None:
        human(data)
    else:
        console.print_json(to_json(data, indent=None))


def failed(results: Iterable[Mapping[str, Any]]) -> bool:
    """Did any job in these results end in a failure (quarantined, rejected, failed)? A retried
    attempt (`"final": false`) is not an outcome: what it ended in is in a later result."""
    return any(r.get("status") in FAILED_STATUSES and r.get("final") is not False
               for r in results)


def exit_for(results: Iterable[Mapping[str, Any]], *, unfinished: bool = False) -> None:
    """Exit 1 if a job failed, or if one has not finished (its last attempt will be retried
    or is dead-lettered)."""
    if failed(results) or unfinished:
        raise typer.Exit(EXIT_FAILED)


def fail(exc: MlopsKitError, as_json: bool) -> None:
    _error_out(exc.message, as_json, code=exc.code, field=exc.field)
    # a breaking version refused (registry.contract) is a refusal, not a misuse: exit 1
    usage = (exc.status < 500 and not isinstance(exc, BreakingChange)) \
        or isinstance(exc, ConfigError)
    raise typer.Exit(EXIT_USAGE if usage else EXIT_FAILED)


def _error_out(message: str, as_json: bool, *, code: str, field: str | None = None) -> None:
    if as_json:
        sys.stdout.write(to_json({"error": message, "code": code, "field": field}, indent=None)
                         + "\n")
        sys.stdout.flush()
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def port_error(host: str, port: int, exc: OSError) -> UsageError:
    """A server that cannot listen: say which address and what to do (exit 2)."""
    import errno

    if exc.errno == errno.EADDRINUSE:
        why = "is already in use"
    elif exc.errno == errno.EACCES:
        why = "needs privileges (ports below 1024)"
    else:
        why = f"cannot be used ({exc.strerror or exc})"
    return UsageError(f"{host}:{port} {why}: pick another with --port (0 picks a free "
                         "one)", field="port")


# -- failures that are not MlopsKitError -------------------------------------------------
def friendly(exc: BaseException) -> tuple[str, int] | None:
    """A message and an exit code for failures a user can fix, or None."""
    if isinstance(exc, ModuleNotFoundError):
        name = (exc.name or "").split(".")[0]
        extra = EXTRAS.get(name)
        if extra:
            return (f"this needs {name}, which is not installed: "
                    f"pip install 'mlops-kit[{extra}]'", EXIT_USAGE)
        if name and not name.startswith("mlops_kit"):
            return (f"{name} is not installed: the installation is incomplete; "
                    "reinstall with pip install --force-reinstall mlops-kit", EXIT_FAILED)
        return None
    kind = type(exc).__name__
    if kind == "NoRegionError":
        return ("no AWS region: set MLOPSKIT_REGION (or AWS_REGION / AWS_DEFAULT_REGION)",
                EXIT_USAGE)
    if kind in ("NoCredentialsError", "PartialCredentialsError"):
        return ("no AWS credentials: set AWS_PROFILE or run `aws configure` "
                "(mlops-kit never reads keys from its own settings)", EXIT_USAGE)
    if kind in ("EndpointConnectionError", "ConnectTimeoutError"):
        return (f"cannot reach the cloud endpoint: {exc} (check MLOPSKIT_ENDPOINT_URL and the "
                "network)", EXIT_FAILED)
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}", EXIT_FAILED
    return None


def report_unexpected(exc: BaseException, as_json: bool) -> int:
    """One line (a traceback only with --verbose) for anything that escaped; the exit code."""
    known = friendly(exc)
    if known is not None:
        message, code = known
    else:
        message = (f"unexpected {type(exc).__name__}: {str(exc)[:300] or 'no message'} "
                   "(run with --verbose for the traceback)")
        code = EXIT_FAILED
    if state.get("verbose") or "--verbose" in sys.argv or "-v" in sys.argv:
        err.print("".join(traceback.format_exception(exc)), markup=False, highlight=False)
    _error_out(message, as_json, code=type(exc).__name__ if known is None else "environment")
    return code


def handle_errors(fn: F) -> F:
    """A command's failure becomes a one-line message (or a JSON error document with --json)
    and an exit code: MlopsKitError -> 2 for a client error (status < 500) or 1; a missing
    extra, a bad path, missing cloud settings -> a message naming the fix; anything else ->
    one line and 1 (the traceback only with --verbose)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        try:
            return fn(*args, **kwargs)
        except _CLICK_ENDS:
            raise
        except MlopsKitError as exc:
            fail(exc, as_json)
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the user gets a message, not a traceback
            raise typer.Exit(report_unexpected(exc, as_json)) from None

    return wrapper  # type: ignore[return-value]
