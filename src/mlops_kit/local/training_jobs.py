"""The local runtime's side of the batch engine: report the state changes of training jobs
running in separate processes (what EventBridge -> SQS -> the `jobs` function does on AWS)."""

from __future__ import annotations

import logging
from typing import Any

from mlops_kit.adapters.local.process_runner import ProcessRunner
from mlops_kit.bootstrap import Backend
from mlops_kit.core.training.engines import on_job_state

log = logging.getLogger("mlops_kit.local.training_jobs")


def settle_jobs(backend: Backend) -> list[dict[str, Any]]:
    """Handle each unreported state change of the local jobs once (at-least-once: a change is
    marked reported only after it was handled)."""
    runner = backend.ctx.jobs
    if not isinstance(runner, ProcessRunner):  # AWS Batch reports through EventBridge
        return []
    results = []
    for state in runner.poll():
        try:
            result = on_job_state(backend.ctx, state)
        except Exception:  # noqa: BLE001 - reported again on the next poll
            log.exception("job %s: handling %s failed", state.name, state.status)
            continue
        runner.reported(state)
        if state.status in ("SUCCEEDED", "FAILED"):
            results.append({**result, "type": "job"})
    return results


def jobs_running(backend: Backend) -> int:
    runner = backend.ctx.jobs
    return runner.running() if isinstance(runner, ProcessRunner) else 0
