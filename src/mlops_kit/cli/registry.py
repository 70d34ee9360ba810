"""`mlops-kit registry ...`: versions, aliases, promotion, approval, rollback, history."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

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
from mlops_kit.cli.safe_change import breaking_refused, override_reason, version_health
from mlops_kit.core.registry.contract import contract_view
from mlops_kit.errors import BreakingChange, NotFound

app = typer.Typer(help="The model registry: versions, aliases, history.", no_args_is_help=True)


def _registry():
    return backend().ctx.registry


@app.command("list")
@handle_errors
def registry_list(as_json: bool = JsonOpt) -> None:
    """Models with their champion and latest version (one read: the models' summaries)."""
    rows = [_listed(s) for s in _registry().summaries()]

    def human(rows):
        t = Table("model", "versions", "latest", "champion", "challenger")
        for r in rows:
            t.add_row(r["model"], str(r["versions"]), str(r["latest"]), str(r["champion"]),
                      str(r["challenger"]))
        console.print(t)

    emit(rows, as_json, human)


def _listed(s: dict[str, Any]) -> dict[str, Any]:
    aliases = s["aliases"]
    return {"model": s["model"], "versions": s["versions"], "latest": s["newest"],
            "champion": (aliases.get("champion") or {}).get("version"),
            "challenger": (aliases.get("challenger") or {}).get("version")}


@app.command("rebuild-summary")
@handle_errors
def registry_rebuild_summary(model: str = typer.Argument(None, help="one model (default: all)"),
                             as_json: bool = JsonOpt) -> None:
    """Recompute models' summaries (what the console and `registry list` read) from their
    rows: once after upgrading from a version without them, or to repair one."""
    from mlops_kit.core.registry.summary import compact

    reg = _registry()
    rows = [_listed(compact(reg.rebuild_summary(name)))
            for name in ([model] if model else reg.list_models())]

    def human(rows):
        console.print(f"{len(rows)} summaries rebuilt")

    emit(rows, as_json, human)


@app.command("versions")
@handle_errors
def registry_versions(model: str, as_json: bool = JsonOpt) -> None:
    """All versions of a model with status, metrics and parity."""
    reg = _registry()
    versions = reg.list_versions(model)
    champ = reg.champion_version(model)

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


@app.command("show")
@handle_errors
def registry_show(model: str, version: int = typer.Argument(None),
                  as_json: bool = JsonOpt) -> None:
    """One version (default: the champion) with its lineage."""
    ctx = backend().ctx
    reg = ctx.registry
    version = version or reg.champion_version(model)
    if version is None:
        raise NotFound(f"model {model!r} has no champion; give a version", field="model")
    record = reg.get_version(model, version)
    record = {**record, **contract_view(reg, model, version, record),
              "serving_health": version_health(ctx, model, version)}
    emit(record, as_json)


@app.command("history")
@handle_errors
def registry_history(model: str, as_json: bool = JsonOpt) -> None:
    """What was in production when: every alias move, oldest first."""
    events = _registry().history(model)

    def human(evs):
        t = Table("at", "action", "alias", "from", "to", "actor", "reason")
        for e in evs:
            t.add_row(str(e["at"])[:19], e["action"], str(e.get("alias") or ""),
                      str(e.get("from_version")), str(e.get("to_version")), e.get("actor", ""),
                      str(e.get("reason", ""))[:60])
        console.print(t)

    emit(events, as_json, human)


AllowBreaking = typer.Option(
    False, "--allow-breaking",
    help="Accept a version whose input contract breaks the champion's callers (needs --reason; "
         "recorded in history).")


@app.command("promote")
@handle_errors
def registry_promote(model: str, version: int,
                     reason: str = typer.Option(None, "--reason",
                                                help="Why (required with --allow-breaking)."),
                     actor: str = typer.Option("cli", "--actor"),
                     allow_breaking: bool = AllowBreaking,
                     as_json: bool = JsonOpt) -> None:
    """Make a registered version the champion. A version whose input contract breaks the
    champion's callers is refused (exit 1) unless --allow-breaking --reason TEXT."""
    why = override_reason(reason, allow_breaking, as_json) or "manual promotion"
    try:
        out = _registry().promote(model, version, actor=actor, reason=why,
                                  allow_breaking=allow_breaking)
    except BreakingChange as exc:
        breaking_refused(exc, as_json)
        raise typer.Exit(EXIT_FAILED) from None
    emit(out, as_json, lambda d: console.print(
        f"[green]{model}[/green] champion: v{d['previous']} -> v{d['version']}"))


@app.command("approve")
@handle_errors
def registry_approve(model: str, version: int, actor: str = typer.Option("cli", "--actor"),
                     promote: bool = typer.Option(True, help="Promote after approving."),
                     as_json: bool = JsonOpt) -> None:
    """Approve a version that the spec's promotion policy holds for manual approval."""
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
    emit(out, as_json)


@app.command("rollback")
@handle_errors
def registry_rollback(model: str, reason: str = typer.Option("rollback", "--reason"),
                      actor: str = typer.Option("cli", "--actor"), as_json: bool = JsonOpt) -> None:
    """Undo the last champion move; a second rollback goes one further back, never forward."""
    out = _registry().rollback(model, actor=actor, reason=reason)
    emit(out, as_json, lambda d: console.print(
        f"[yellow]{model}[/yellow] rolled back: v{d['previous']} -> v{d['version']}"))


@app.command("challenger")
@handle_errors
def registry_challenger(model: str, version: int = typer.Argument(None),
                        mode: str = typer.Option("canary", help="canary or shadow"),
                        weight: float = typer.Option(0.1, min=0.0, max=1.0),
                        actor: str = typer.Option("cli", "--actor"),
                        allow_breaking: bool = AllowBreaking,
                        reason: str = typer.Option(None, "--reason",
                                                   help="Why (required with --allow-breaking)."),
                        as_json: bool = JsonOpt) -> None:
    """Set (or clear, with no version) the challenger: canary share or shadow scoring. A
    version whose input contract breaks the champion's callers is refused (exit 1) unless
    --allow-breaking --reason TEXT."""
    if mode not in ("canary", "shadow"):
        fail(UsageError("mode: must be canary or shadow", field="mode"), as_json)
    why = override_reason(reason, allow_breaking, as_json)
    default = f"{mode} {weight:.0%}" if version else "cleared"
    try:
        out = _registry().set_alias(model, "challenger", version, actor=actor,
                                    reason=f"{default}: {why}" if why else default,
                                    extra={"mode": mode, "weight": weight},
                                    allow_breaking=allow_breaking)
    except BreakingChange as exc:
        breaking_refused(exc, as_json)
        raise typer.Exit(EXIT_FAILED) from None
    emit(out, as_json)


