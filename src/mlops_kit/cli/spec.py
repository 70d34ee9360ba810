"""`mlops-kit spec apply|check`: model specs under specs/<model>.yaml."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from mlops_kit.cli.common import EXIT_FAILED, JsonOpt, backend, console, emit, handle_errors
from mlops_kit.core import layout

app = typer.Typer(help="Model specs (specs/<model>.yaml).", no_args_is_help=True)


@app.command("apply")
@handle_errors
def spec_apply(file: Path = typer.Argument(..., exists=True, dir_okay=False),
               as_json: bool = JsonOpt) -> None:
    """Check a spec and store it under specs/<name>.yaml."""
    from mlops_kit.core.spec import load_spec_bytes
    from mlops_kit.core.training.estimators import check_params

    raw = file.read_bytes()
    spec = load_spec_bytes(raw, source=str(file))
    check_params(spec)  # an unknown or invalid estimator.params entry is named here
    _check_search(spec)
    b = backend()
    before = _applied(b, spec.name)
    suffix = ".json" if raw.lstrip().startswith(b"{") else ".yaml"
    for old in (".yaml", ".yml", ".json"):
        if old != suffix:
            b.ctx.store.delete(layout.spec_key(spec.name, old))
    key = layout.spec_key(spec.name, suffix)
    b.ctx.store.put(key, raw)
    from mlops_kit.core.spec_changes import spec_changes

    changes = spec_changes(before, spec)
    out = {"model": spec.name, "key": key, "spec_hash": spec.spec_hash(),
           "task": spec.task.value, "features": len(spec.features),
           "previous": before is not None, "changes": changes}

    def human(d):
        console.print(f"[green]applied[/green] spec [bold]{d['model']}[/bold] -> {d['key']} "
                      f"({d['task']}, {d['features']} features)")
        if not d["previous"]:
            console.print("  new spec: it applies from the next upload")
        elif not changes:
            console.print("  no change from the spec applied before")
        for c in changes:
            console.print(f"  {escape(c['path'])}: {escape(repr(c['before']))} -> "
                          f"{escape(repr(c['after']))}  [dim]({escape(c['takes_effect'])})[/dim]",
                          soft_wrap=True)

    emit(out, as_json, human)


def _applied(b, model: str):
    """The spec applied before (None when there is none or it no longer parses)."""
    from mlops_kit.core.context import load_spec
    from mlops_kit.errors import MlopsKitError

    try:
        return load_spec(b.ctx.store, model)
    except MlopsKitError:
        return None


@app.command("check")
@handle_errors
def spec_check(file: Path = typer.Argument(..., exists=True, dir_okay=False),
               data: Path = typer.Option(None, "--data", exists=True, dir_okay=False,
                                         help="Also validate this dataset against the spec."),
               as_json: bool = JsonOpt) -> None:
    """Check a spec file without storing it (and, with --data, a dataset against it)."""
    from mlops_kit.core.spec import load_spec_bytes
    from mlops_kit.core.training.estimators import check_params

    spec = load_spec_bytes(file.read_bytes(), source=str(file))
    check_params(spec)  # an unknown or invalid estimator.params entry is named here
    trials = _check_search(spec)
    out = {"model": spec.name, "valid": True, "spec_hash": spec.spec_hash()}
    if trials is not None:
        out["search_trials"] = trials
    failed = _check_data(spec, data, out) if data is not None else []
    emit(out, as_json, lambda d: console.print(
        (f"[green]valid[/green] spec {d['model']}" if d["valid"]
         else f"[red]refused[/red] {d['model']}: {data} does not fit the spec")
        + (f" (search: {d['search_trials']} trials)" if "search_trials" in d else "")
        + "".join(f"\n  [red]x[/red] {r['message']}" for r in failed)))
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _check_data(spec, data: Path, out: dict) -> list[dict]:
    """The dataset validated as an upload would be: the failed rules (e.g. positive_class)."""
    from mlops_kit.core.validation.validator import detect_format, validate_dataset

    with data.open("rb") as f:
        result = validate_dataset(f, detect_format(data.name), spec)
    failed = [r for r in result.report.get("rules", []) if not r.get("passed")]
    out.update(valid=not failed, data=str(data), rows=result.rows, failed_rules=failed)
    return failed


def _check_search(spec) -> int | None:
    """A search's candidates against scikit-learn: unknown or bad parameters named now."""
    if spec.search is None:
        return None
    from mlops_kit.core.training.search import check_search

    plan = check_search(spec)
    return len(plan.trials) if plan else 0


