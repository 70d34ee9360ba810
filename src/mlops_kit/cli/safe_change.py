"""What the registry commands share about input contracts and serving health: the usage rule
of --allow-breaking, the refusal's output (exit 1 with the features named) and the health of
a version over the last day."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rich.markup import escape

from mlops_kit.cli.common import UsageError, err, fail, to_json
from mlops_kit.core.serving.health import read_health
from mlops_kit.errors import BreakingChange

HEALTH_HOURS = 24


def override_reason(reason: str | None, allow_breaking: bool, as_json: bool) -> str | None:
    """--allow-breaking needs --reason TEXT (audited): without one, a usage error (exit 2)."""
    if allow_breaking and not (reason or "").strip():
        fail(UsageError("--allow-breaking needs --reason TEXT: why these callers may break "
                        "(recorded in history)", field="reason"), as_json)
    return reason.strip() if reason else None


def breaking_refused(exc: BreakingChange, as_json: bool) -> None:
    """The refusal: one line on stderr, and with --json one JSON document naming the
    features (the caller exits 1: refused, not misused)."""
    if as_json:
        import sys

        sys.stdout.write(to_json({"error": exc.message, "code": exc.code,
                                  "features": exc.features}, indent=None) + "\n")
        sys.stdout.flush()
    err.print(f"[red]refused:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True)


def version_health(ctx: Any, model: str, version: int) -> dict[str, Any]:
    """2xx/4xx/5xx, latency percentiles and routing events of `version` over the last day."""
    end = ctx.clock.now()
    health = read_health(ctx.store, model, end - timedelta(hours=HEALTH_HOURS), end)
    return {"hours": HEALTH_HOURS,
            **(health["versions"].get(str(version)) or {"requests": 0})}
