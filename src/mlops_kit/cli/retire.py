"""`mlops-kit registry archive|delete|unserve`: retiring versions and models, audited.

Registered on the `registry` group (cli/registry.py stays about versions and aliases). A
refusal (served, still training) exits 1; an unknown model or version exits 2."""

from __future__ import annotations

import typer

from mlops_kit.cli.common import (
    EXIT_FAILED,
    JsonOpt,
    UsageError,
    backend,
    console,
    emit,
    fail,
    handle_errors,
)
from mlops_kit.cli.registry import app
from mlops_kit.core.registry.retirement import Refused

__all__ = ["app"]


def _refused(exc: Refused, as_json: bool) -> None:
    try:
        fail(exc, as_json)
    except typer.Exit:
        raise typer.Exit(EXIT_FAILED) from None


@app.command("archive")
@handle_errors
def registry_archive(model: str, version: int,
                     reason: str = typer.Option("archived", "--reason"),
                     actor: str = typer.Option("cli", "--actor"),
                     as_json: bool = JsonOpt) -> None:
    """Retire a version: never served again, artifacts kept (refused for champion/challenger)."""
    from mlops_kit.core.registry.retirement import archive_version

    reg = backend().ctx.registry
    try:
        record = archive_version(reg, model, version, actor=actor, reason=reason)
    except Refused as exc:
        _refused(exc, as_json)
        return
    out = {"model": model, "version": version, "status": record["status"],
           "archived_from": record.get("archived_from"), "archived_at": record.get("archived_at")}
    emit(out, as_json, lambda d: console.print(
        f"[yellow]archived[/yellow] {model} v{version} (was {d['archived_from']}); "
        "artifacts kept"))


@app.command("delete")
@handle_errors
def registry_delete(model: str, version: int = typer.Argument(None),
                    yes: bool = typer.Option(False, "--yes", help="Confirm: this removes artifacts."),
                    reason: str = typer.Option("deleted", "--reason"),
                    actor: str = typer.Option("cli", "--actor"),
                    as_json: bool = JsonOpt) -> None:
    """Delete a version (or, with no version, the whole model): artifacts and registry rows go,
    the history keeps the deletion. Refused while served."""
    from mlops_kit.core.registry.retirement import delete_model, delete_version

    if not yes:
        what = f"v{version} of {model}" if version is not None else f"every version of {model}"
        fail(UsageError(f"this deletes {what} and its artifacts for good: add --yes",
                        field="yes"), as_json)
    b = backend()
    try:
        if version is None:
            if model not in b.ctx.registry.list_models():
                fail(UsageError(f"unknown model {model!r}", field="model"), as_json)
            out = delete_model(b.ctx.registry, b.ctx.store, model, actor=actor, reason=reason)
        else:
            out = delete_version(b.ctx.registry, b.ctx.store, model, version, actor=actor,
                                 reason=reason)
    except Refused as exc:
        _refused(exc, as_json)
        return
    emit(out, as_json, lambda d: console.print(
        f"[red]deleted[/red] {model}" + (f" v{version}" if version is not None else
                                         f" (versions {d.get('versions')})")
        + f": {d['artifacts']} artifacts removed; recorded in the history"))


@app.command("unserve")
@handle_errors
def registry_unserve(model: str, reason: str = typer.Option("unserved", "--reason"),
                     actor: str = typer.Option("cli", "--actor"), as_json: bool = JsonOpt) -> None:
    """Stop serving a model: clear its challenger and champion (audited in the history)."""
    reg = backend().ctx.registry
    aliases = reg.aliases(model)
    if not aliases and model not in reg.list_models():
        fail(UsageError(f"unknown model {model!r}", field="model"), as_json)
    cleared = {}
    for alias in ("challenger", "champion"):
        current = (aliases.get(alias) or {}).get("version")
        if current is not None:
            reg.set_alias(model, alias, None, actor=actor, reason=reason, action="unserve",
                          expected=current)
            cleared[alias] = current
    emit({"model": model, "cleared": cleared}, as_json, lambda d: console.print(
        f"{model}: " + (", ".join(f"{a} v{v} cleared" for a, v in cleared.items())
                        or "was not served")))

