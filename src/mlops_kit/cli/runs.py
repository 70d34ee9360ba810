"""`mlops-kit runs list|show|compare`: experiment runs (a spec with a `search`) and their
trials. A run is numbered by the version it reserved: `runs show churn 3` is version 3's run."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich import box
from rich.table import Table

from mlops_kit.cli.common import JsonOpt, backend, console, emit, handle_errors
from mlops_kit.errors import ValidationError

app = typer.Typer(help="Experiment runs: candidates tried per upload, compared.",
                  no_args_is_help=True)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _params(p: dict[str, Any] | None, width: int = 60) -> str:
    text = ", ".join(f"{k}={v}" for k, v in sorted((p or {}).items()))
    return text if len(text) <= width else text[: width - 1] + "…"


_MARKS = {"failed": "✗", "skipped": "-", "pending": "…"}  # rank column for unscored trials


def _load(runs, model: str, run: int) -> tuple[dict, list[dict]]:
    return runs.get_run(model, run), runs.trials(model, run)


@app.command("list")
@handle_errors
def runs_list(model: str, as_json: bool = JsonOpt) -> None:
    """The runs of a model, newest first: status, trials, the best candidate."""
    from mlops_kit.core.registry.run_views import run_summary

    runs = backend().ctx.runs
    rows = [run_summary(r, runs.trials(model, r["run"])) for r in reversed(runs.list_runs(model))]

    def human(rows: list[dict]) -> None:
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for name in ("run", "status", "trials", "best", "winner", "version", "s"):
            t.add_column(name, overflow="fold", justify="right" if name == "s" else "left")
        for r in rows:
            best = r["best"] or {}
            trials = f"{r['ok']}/{r['trials']} ok" + "".join(
                f", {r[k]} {k}" for k in ("failed", "skipped", "pending") if r[k])
            version = f"v{r['version']} {r.get('version_status') or ''}".strip()
            t.add_row(str(r["run"]), r["status"], trials,
                      f"{r['metric']} {_fmt(best.get('cv'))}" if best else "–",
                      f"{best.get('kind', '–')} {best.get('hash', '')}".strip(),
                      version + (" ★" if r.get("promoted") else ""), _fmt(r["seconds"], 1))
        console.print(t if rows else f"no runs for {model!r} (a spec with a `search` makes them)")

    emit(rows, as_json, human)


@app.command("show")
@handle_errors
def runs_show(model: str, run: int, as_json: bool = JsonOpt) -> None:
    """One run: its trials sorted by the metric, the best marked."""
    from mlops_kit.core.registry.run_views import ranked_trials, run_summary

    record, trials = _load(backend().ctx.runs, model, run)
    out = {"summary": run_summary(record, trials), "trials": ranked_trials(record, trials),
           "notes": record.get("notes") or []}

    def human(d: dict) -> None:
        s = d["summary"]
        console.print(f"[bold]{model}[/bold] run {run}: {s['status']}, {s['strategy']} search on "
                      f"{s['metric']} ({s['cv']}-fold CV), engine {s['engine']}, "
                      f"{s['trials']} trials ({s['ok']} ok, {s['failed']} failed, "
                      f"{s['skipped']} skipped, {s['pending']} pending)")
        for note in d["notes"]:
            console.print(f"[dim]{note}[/dim]")
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        t.add_column("#", no_wrap=True)
        t.add_column("trial", no_wrap=True)
        t.add_column("candidate", overflow="fold", min_width=24)
        t.add_column(f"cv {s['metric']}", no_wrap=True, justify="right")
        t.add_column("holdout", no_wrap=True, justify="right")
        t.add_column("fit s", no_wrap=True, justify="right")
        for r in d["trials"]:
            std = (r.get("cv_std") or {}).get(s["metric"])
            mark = "★" if r["best"] else " "
            rank = _fmt(r["rank"]) if r["rank"] else _MARKS.get(r.get("status", ""), "?")
            t.add_row(mark + rank, r["hash"],
                      f"{r.get('kind')} {_params(r.get('params'), 200)}".strip(),
                      _fmt(r["value"]) + (f"±{std:.3f}" if std is not None else ""),
                      _fmt((r.get("holdout") or {}).get(s["metric"])),
                      _fmt(r.get("fit_seconds"), 2),
                      style="bold green" if r["best"] else None)
        console.print(t)
        for r in d["trials"]:
            if r.get("reason"):
                console.print(f"{r['hash']} {r.get('status')}: {r['reason']}", soft_wrap=True)
        if s.get("version_status"):
            console.print(f"version {s['version']}: {s['version_status']}"
                          f"{' (champion)' if s.get('promoted') else ''}")

    emit(out, as_json, human)


def _ref(ref: str, model: str | None) -> tuple[str, int]:
    name, _, number = ref.rpartition(":")
    name = name or model or ""
    if not name:
        raise ValidationError(f"run {ref!r}: write MODEL:RUN (e.g. churn:3) or give --model",
                            field="run")
    try:
        return name, int(number)
    except ValueError:
        raise ValidationError(f"run {ref!r}: the run is a number (e.g. churn:3)", field="run") from None


@app.command("compare")
@handle_errors
def runs_compare(run_a: str = typer.Argument(..., help="MODEL:RUN, or RUN with --model"),
                 run_b: str = typer.Argument(..., help="MODEL:RUN, or RUN with --model"),
                 model: str = typer.Option(None, "--model", "-m"),
                 as_json: bool = JsonOpt) -> None:
    """Two runs side by side: best trials and every candidate both tried."""
    from mlops_kit.core.registry.run_views import compare_runs

    runs = backend().ctx.runs
    a, b = _ref(run_a, model), _ref(run_b, model)
    out = compare_runs(_load(runs, *a), _load(runs, *b))

    def human(d: dict) -> None:
        t = Table("", f"{a[0]}:{a[1]}", f"{b[0]}:{b[1]}")
        sa, sb = d["a"], d["b"]
        for label, key in (("status", "status"), ("dataset", "dataset_key"),
                           ("spec", "spec_hash"), ("trials", "trials"), ("ok", "ok"),
                           ("failed", "failed"), ("seconds", "seconds")):
            t.add_row(label, _fmt(sa.get(key), 1)[:40], _fmt(sb.get(key), 1)[:40])
        ba, bb = sa["best"] or {}, sb["best"] or {}
        t.add_row(f"best {d['metric']}", _fmt(ba.get("cv")), _fmt(bb.get("cv")))
        t.add_row("best candidate", f"{ba.get('kind')} {_params(ba.get('params'), 40)}",
                  f"{bb.get('kind')} {_params(bb.get('params'), 40)}")
        console.print(t)
        if d["best_delta"] is not None:
            console.print(f"best {d['metric']}: {d['best_delta']:+.4f} "
                          f"({'b' if d['better'] == 'b' else 'a'} is better)"
                          if d["better"] else f"best {d['metric']}: equal")
        if d["common"]:
            c = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="candidates both runs tried")
            c.add_column("trial", no_wrap=True)
            c.add_column("candidate", overflow="fold", min_width=24)
            for name in ("a", "b", "delta"):
                c.add_column(name, no_wrap=True, justify="right")
            for r in d["common"]:
                c.add_row(r["hash"], f"{r['kind']} {_params(r['params'], 200)}".strip(),
                          _fmt(r["a"]), _fmt(r["b"]),
                          "–" if r["delta"] is None else f"{r['delta']:+.4f}")
            console.print(c)

    emit(json.loads(json.dumps(out, default=str)), as_json, human)
