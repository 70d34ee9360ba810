"""AWS Batch (Fargate) as the training engine: submit a job, find it again by name, and read
Batch Job State Change events.

A job is named after its run (`train-<model>-<sha256[:32]>-<spec hash[:16]>`, sanitised to
Batch's rule: 1-128 letters, digits, '-' and '_', starting with a letter or digit). Batch
names are not unique, so `submit` first lists the queue's jobs with that name (any status):
a redelivered train message finds the job it already started instead of starting a second.
The registry reservation (one version per run key) still holds if two jobs ever ran.

The retry strategy retries an attempt only for infrastructure reasons (the host or the task
failed to start, the image could not be pulled) and for exit code 75, the entry point's
transient fault; everything else (a data/spec/model failure, out of memory, the timeout)
exits: retrying the same input fails the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from mlops_kit.adapters.aws._errors import mapped
from mlops_kit.ports import JobHandle, JobState
from mlops_kit.topology import BatchJob, batch_retry_strategy

JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
STATE_CHANGE = "Batch Job State Change"


def batch_job_name(name: str) -> str:
    """A valid Batch job name for `name`; distinct names stay distinct (hash when shortened)."""
    clean = re.sub(r"[^A-Za-z0-9_-]", "-", name)
    if not clean or not clean[0].isalnum():
        clean = "j" + clean
    if len(clean) > 128 or clean != name:
        if len(clean) > 128:
            clean = clean[:111]
        clean = f"{clean}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    return clean


class BatchRunner:
    """JobRunner on AWS Batch."""

    engine = "batch"

    def __init__(self, queue: str, definition: str, client: Callable[[], Any], job: BatchJob,
                 *, attempts: int | None = None, timeout_s: int | None = None) -> None:
        self.queue, self.definition, self._client = queue, definition, client
        self.job, self.attempts = job, attempts or job.attempts
        self.timeout_s = timeout_s or job.timeout_s

    def find(self, name: str) -> dict[str, Any] | None:
        """The newest job of the queue with this name, in any status."""
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"jobQueue": self.queue,
                                  "filters": [{"name": "JOB_NAME", "values": [name]}]}
        with mapped(f"batch list-jobs {name}"):
            while True:  # with a filter, Batch lists every status
                page = self._client().list_jobs(**kwargs)
                found += [j for j in page.get("jobSummaryList", []) if j.get("jobName") == name]
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
        return max(found, key=lambda j: j.get("createdAt", 0)) if found else None

    def submit(self, name: str, env: dict[str, str]) -> JobHandle:
        name = batch_job_name(name)
        existing = self.find(name)
        if existing is not None:
            return JobHandle(self.engine, name, existing["jobId"], False)
        with mapped(f"batch submit-job {name}"):
            out = self._client().submit_job(
                jobName=name, jobQueue=self.queue, jobDefinition=self.definition,
                containerOverrides={"environment": [{"name": k, "value": v}
                                                    for k, v in sorted(env.items())]},
                retryStrategy=batch_retry_strategy(self.job, self.attempts),
                # no tags here: tagging on submit needs batch:TagResource too (the job
                # definition's tags propagate to the task instead)
                timeout={"attemptDurationSeconds": self.timeout_s})
        return JobHandle(self.engine, name, out["jobId"], True)


def state_from_event(event: dict[str, Any]) -> JobState | None:
    """A Batch Job State Change event (EventBridge; the SQS body) -> JobState; None for
    anything else."""
    if event.get("source") != "aws.batch" or event.get("detail-type") != STATE_CHANGE:
        return None
    d = event.get("detail") or {}
    container = d.get("container") or {}
    env = {e["name"]: e["value"] for e in container.get("environment") or []
           if isinstance(e, dict) and str(e.get("name", "")).startswith("MLOPSKIT_")}
    reason = d.get("statusReason")
    detail = container.get("reason")
    if container.get("exitCode") is not None:
        detail = f"{detail + '; ' if detail else ''}exit code {container['exitCode']}"
    if detail:
        reason = f"{reason} ({detail})" if reason else detail
    return JobState("batch", d.get("jobName", ""), d.get("jobId", ""), d.get("status", ""),
                    reason, env, len(d.get("attempts") or []))


def parse_body(body: str) -> JobState | None:
    try:
        event = json.loads(body)
    except ValueError:
        return None
    return state_from_event(event) if isinstance(event, dict) else None
