"""`mlops-kit jobs [MODEL]`: work in flight and recently ended, on every backend."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from mlops_kit.cli.common import JsonOpt, backend, console, emit, handle_errors

app = typer.Typer()

ACTIVE = {"queued", "running", "retrying"}
TROUBLE = {"stuck", "orphaned", "dead_letter", "failed", "rejected", "quarantined"}


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@app.command("jobs")
@handle_errors
def jobs(model: str = typer.Argument(None, help="Only this model's work."),
         recent_hours: float = typer.Option(24.0, "--recent-hours", min=0.0,
                                            help="Also list work that ended this recently."),
         as_json: bool = JsonOpt) -> None:
    """Work in flight (queued, running, stuck) and recently ended: where, age, attempts and
    last error. A training whose worker died shows as orphaned or stuck at once."""
    from mlops_kit.core.inflight import work_in_flight

    b = backend()
    if model is not None:
        from mlops_kit.core.layout import check_name

        check_name(model)
    view = work_in_flight(b.ctx, b.validate_queue, model, recent_hours=recent_hours)

    def human(v):
        t = Table("kind", "model", "version", "state", "where", "age", "attempts", "last error")
        for r in v["jobs"]:
            state = r["state"]
            colour = "red" if state in TROUBLE else "yellow" if state in ACTIVE else "green"
            t.add_row(r["kind"], str(r.get("model") or "-"), str(r.get("version") or "-"),
                      f"[{colour}]{state}[/{colour}]", escape(str(r.get("where") or "-")),
                      _age(r.get("age_seconds")), str(r.get("attempts") or "-"),
                      escape(str(r.get("last_error") or ""))[:120])
        console.print(t)
        queues = ", ".join(f"{name}: {q['depth']} queued, {q['dead_letters']} dead-lettered"
                           for name, q in v["queues"].items())
        console.print(f"{v['in_flight']} in flight; queues {queues}")

    emit(view, as_json, human)
