"""`mlops-kit spec init|apply|check`: model specs under specs/<model>.yaml. `init` proposes a
spec from a data file (the inference is core/spec_infer.py, the YAML core/spec_render.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from mlops_kit.cli.common import (
    EXIT_FAILED,
    JsonOpt,
    UsageError,
    backend,
    console,
    emit,
    err,
    handle_errors,
)
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
                                         help="Also validate this CSV/Parquet file against "
                                              "the spec, as an upload would (nothing stored)."),
               as_json: bool = JsonOpt) -> None:
    """Check a spec file without storing it (and a data file against it with --data).

    Exits 1 if the data file would be quarantined."""
    from mlops_kit.core.spec import load_spec_bytes
    from mlops_kit.core.training.estimators import check_params

    spec = load_spec_bytes(file.read_bytes(), source=str(file))
    check_params(spec)  # an unknown or invalid estimator.params entry is named here
    trials = _check_search(spec)
    out: dict = {"model": spec.name, "valid": True, "spec_hash": spec.spec_hash()}
    if trials is not None:
        out["search_trials"] = trials
    if data is not None:
        out["data"] = _check_data(spec, data)
    emit(out, as_json, _print_check)
    if data is not None and not out["data"]["passed"]:
        raise typer.Exit(EXIT_FAILED)


def _check_data(spec, data: Path) -> dict:
    """The validation an upload runs, on a local file: passed, rows, the failed rules, and the
    file's columns the spec does not use (they would be ignored)."""
    from mlops_kit.core.validation.validator import validate_dataset

    with data.open("rb") as stream:
        result = validate_dataset(stream, data_format(data), spec)
    failed = [{"rule": r.get("rule"), "column": r.get("column"), "count": r.get("count"),
               "message": r.get("message")}
              for r in result.report.get("rules", []) if not r.get("passed", True)]
    return {"file": str(data), "passed": result.passed, "rows": result.rows,
            "failed_rules": failed, "unused_columns": unused_columns(spec, data)}


def unused_columns(spec, data: Path) -> list[str]:
    """The file's columns that are neither a feature nor the target (ignored by training)."""
    names = header_names(data)
    used = {*spec.feature_names, spec.target}
    return [n for n in dict.fromkeys(names) if n not in used]


def header_names(data: Path) -> list[str]:
    from mlops_kit.core.datasets import read_csv_header

    if data_format(data) == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(data).names)
        except Exception:  # noqa: BLE001 - validation reports an unreadable file
            return []
    with data.open("rb") as stream:
        _, names, _ = read_csv_header(stream)
    return names or []


def _print_check(d: dict) -> None:
    console.print(f"[green]valid[/green] spec {d['model']}"
                  + (f" (search: {d['search_trials']} trials)" if "search_trials" in d else ""))
    if "data" not in d:
        return
    x = d["data"]
    verdict = "[green]passed[/green]" if x["passed"] else "[red]would be quarantined[/red]"
    console.print(f"{x['file']}: {verdict} ({x['rows']:,} rows)", highlight=False)
    for r in x["failed_rules"]:
        console.print(f"  {r['rule']}: {r['message']}", markup=False, highlight=False)
    if x["unused_columns"]:
        err.print(f"[yellow]warning[/yellow]: columns not in the spec are ignored: "
                  f"{x['unused_columns']}", highlight=False, soft_wrap=True)


def _check_search(spec) -> int | None:
    """A search's candidates against scikit-learn: unknown or bad parameters named now."""
    if spec.search is None:
        return None
    from mlops_kit.core.training.search import check_search

    plan = check_search(spec)
    return len(plan.trials) if plan else 0




def data_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise UsageError(f"{path}: unknown data format {suffix or '(no suffix)'!r}: "
                     "use a .csv or .parquet file", field="data")


def _model_name(path: Path) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "_", path.stem.lower()).strip("_-")[:63]
    return name if layout.NAME_RE.fullmatch(name or "") else "model"


@app.command("init")
@handle_errors
def spec_init(
    data: Path = typer.Argument(..., exists=True, dir_okay=False,
                                help="A CSV or Parquet file (read in one streamed pass)."),
    target: str = typer.Option(..., "--target", "-t", help="The column to predict."),
    name: str = typer.Option(None, "--name", help="Model name (default: the file's name)."),
    output: Path = typer.Option(None, "--output", "-o",
                                help="Write the spec here (default: print it)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --output."),
    max_categories: int = typer.Option(30, "--max-categories", min=2,
                                       help="List the categories of columns with at most "
                                            "this many distinct values."),
    margin: float = typer.Option(0.1, "--margin", min=0.0,
                                 help="Widen observed numeric ranges by this share of the span."),
    as_json: bool = JsonOpt,
) -> None:
    """Propose a spec from a data file: task, feature types, ranges, categories; columns it
    will not use are written commented out with the reason."""
    from mlops_kit.core.spec_infer import infer, profile_stream
    from mlops_kit.core.spec_render import check_rendered, feature_types, render_spec
    from mlops_kit.errors import SpecError

    fmt = data_format(data)
    model = name or _model_name(data)
    if not layout.NAME_RE.fullmatch(model):
        raise UsageError(f"--name {model!r}: must be 1-63 lowercase letters, digits, '-' or '_'",
                         field="name")
    if output is not None and output.exists() and not force:
        raise UsageError(f"{output} exists: pass --force to overwrite it", field="output")
    with data.open("rb") as stream:
        profiles, _ = profile_stream(stream, fmt)  # type: ignore[arg-type]
    types = feature_types()
    inferred = infer(profiles, target, types=types, margin=margin,
                     max_categories=max_categories)
    if not inferred.features:
        raise UsageError(f"{data}: no column is usable as a feature ("
                         + "; ".join(f"{d.profile.name}: {d.reason}" for d in inferred.columns)
                         + ")", field="data")
    text = render_spec(inferred, model, source=data.name, types=types)
    try:
        check_rendered(text)  # what apply will read: a bug here never reaches the user's file
    except SpecError:
        if inferred.positive_class is None:
            raise
        # the spec's positive_class may want another spelling of the label: leave it to the
        # user's confirmation, as a comment
        text = render_spec(inferred, model, source=data.name, types=types, positive_key=False)
        check_rendered(text)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    left = [{"name": d.profile.name, "reason": d.reason}
            for d in inferred.columns if d.reason is not None]
    out: dict[str, Any] = {
           "model": model, "output": str(output) if output else None, "task": inferred.task,
           "target": target, "rows": inferred.rows, "positive_class": inferred.positive_class,
           "confirm": ["positive_class"] if inferred.positive_class is not None else [],
           "features": [{"name": d.profile.name, "type": d.kind} for d in inferred.features],
           "not_features": left}
    if as_json:
        emit({**out, "spec": text}, True)
        return
    if output is None:
        sys.stdout.write(text)
    err.print(f"[green]proposed[/green] {inferred.task} spec [bold]{model}[/bold] "
              f"({len(out['features'])} features, {len(left)} columns left out)"
              + (f" -> {output}" if output else ""), highlight=False)
    for c in left:
        err.print(f"  left out {c['name']}: {c['reason']}", highlight=False, markup=False)
    if inferred.positive_class is not None:
        err.print(f"[yellow]confirm[/yellow] positive_class {inferred.positive_class!r} "
                  "(proposed: the minority class)", highlight=False)
