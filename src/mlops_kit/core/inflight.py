"""Work in flight and recently ended, on every backend: what `mlops-kit jobs` shows.

Built from what every backend has: the registry (a `pending` version is a training that has not
ended; past the train queue's visibility timeout it is `stuck`), the scoring jobs' records
(core/scoring/records.py: running with chunks done / total, or ended), the batch engine's job markers,
the queues' depths and dead letters. A queue that can list its messages (the local SQLite queue:
`pending_messages()`) adds each message's state, attempts and whether the worker holding it is
still alive, so a worker killed with -9 shows at once, not after the visibility timeout.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from mlops_kit.core.registry import PENDING
from mlops_kit.core.scoring.records import RUNNING, ScoringJobs
from mlops_kit.core.table_keys import train_job_pk
from mlops_kit.ports import Queue

RECENT_HOURS = 24.0


def _age(now: datetime, at: Any) -> float | None:
    try:
        return round((now - datetime.fromisoformat(str(at))).total_seconds(), 1)
    except (TypeError, ValueError):
        return None


def work_in_flight(ctx: Any, validate_queue: Queue | None, model: str | None = None, *,
                   recent_hours: float = RECENT_HOURS) -> dict[str, Any]:
    """{"jobs": [...], "queues": {...}}: one row per training version pending or ended in the
    last `recent_hours`, per queued / held / dead-lettered message, newest first."""
    now = ctx.clock.now()
    since = now - timedelta(hours=recent_hours)
    queues = {"validate": validate_queue, "train": ctx.train_queue}
    messages = {name: _messages(q, model) for name, q in queues.items() if q is not None}
    train_held = {m["dataset_key"]: m for m in messages.get("train", []) if m.get("dataset_key")}
    rows: list[dict[str, Any]] = []
    models = [model] if model else ctx.registry.list_models()
    for name in models:
        markers = {i.get("version"): i for i in ctx.table.query(train_job_pk(name))}
        for v in ctx.registry.list_versions(name):
            row = _version_row(now, since, name, v, markers.get(v["version"]), train_held)
            if row is not None:
                rows.append(row)
        rows += _scoring_rows(ctx, now, since, name)
    claimed = {r.get("message_id") for r in rows}
    for queue_name, items in messages.items():
        for m in items:
            if m["id"] not in claimed:
                rows.append(_message_row(queue_name, m))
    rows.sort(key=lambda r: (r["age_seconds"] is None, r["age_seconds"] or 0.0))
    summary = {}
    for queue_name, q in queues.items():
        if q is None:
            continue
        dead = q.dead_letters()
        summary[queue_name] = {"name": q.name, "depth": q.depth(), "dead_letters": len(dead)}
        for d in dead:
            if model is None or _model_of(d.body) == model:
                rows.append({"kind": queue_name, "model": _model_of(d.body), "version": None,
                             "state": "dead_letter", "where": f"{q.name} (dead-letter queue)",
                             "age_seconds": None, "attempts": d.receive_count,
                             "last_error": "retries exhausted; the message waits in the "
                                           "dead-letter queue", "message_id": d.id,
                             "object": _unwrap(d.body).get("key")
                             or d.body.get("dataset_key")})
    in_flight = sum(r["state"] in ("queued", "running", "retrying", "stuck", "orphaned")
                    for r in rows)
    return {"at": now.isoformat(), "model": model, "recent_hours": recent_hours,
            "in_flight": in_flight, "jobs": rows, "queues": summary}


def _version_row(now: datetime, since: datetime, model: str, v: dict[str, Any],
                 marker: dict | None, held: dict[str, dict]) -> dict[str, Any] | None:
    lineage = v.get("lineage") or {}
    status = v.get("status")
    ended = v.get("completed_at") or v.get("archived_at")
    if status != PENDING:
        try:
            if ended is None or datetime.fromisoformat(str(ended)) < since:
                return None
        except ValueError:
            return None
    message = held.get(str(lineage.get("dataset_key"))) if status == PENDING else None
    where = (marker or {}).get("engine") or lineage.get("engine") or "function"
    if marker and marker.get("job_id"):
        where = f"{where} job {marker.get('job_name') or marker['job_id']}"
    state = status
    last_error = None
    if status == PENDING:
        state = "stuck" if v.get("stuck") else "running"
        if message is not None:
            where = f"{where} via {message['queue']}"
            if message.get("holder_alive") is False:
                state = "orphaned"
                last_error = (f"the worker holding it (pid {message.get('holder_pid')}) is gone; "
                              f"the message is retried after {message.get('visible_in_s', 0):.0f} s")
            elif message["state"] == "queued" and message["attempts"]:
                state = "retrying"
        if state == "stuck" and last_error is None:
            last_error = ("pending longer than the train queue's visibility timeout: its job "
                          "died or sits in the dead-letter queue")
    elif status in ("failed", "rejected"):
        last_error = "; ".join(v.get("reasons") or []) or None
    return {"kind": "train", "model": model, "version": v["version"], "state": state,
            "where": where, "age_seconds": _age(now, v.get("created_at")),
            "ended_at": ended if status != PENDING else None,
            "attempts": (message or {}).get("attempts") or (marker or {}).get("attempts"),
            "last_error": last_error, "message_id": (message or {}).get("id"),
            "object": lineage.get("dataset_key")}


def _scoring_rows(ctx: Any, now: datetime, since: datetime, model: str) -> list[dict[str, Any]]:
    """One row per scoring job running, or ended since `since` (scored, failed, quarantined)."""
    rows = []
    for job in ScoringJobs(ctx.table, ctx.clock).all(model):
        ended = job.get("finished_at")
        if job.get("status") != RUNNING:
            try:
                if ended is None or datetime.fromisoformat(str(ended)) < since:
                    continue
            except ValueError:
                continue
        where = "function"
        if job.get("chunked"):
            where = f"validate queue: {job.get('done', 0)}/{job.get('total')} chunks scored"
        elif job.get("job_name"):  # on the batch engine (core/scoring/batch.py)
            where = f"batch ({job.get('engine')}): {job['job_name']}"
        rows.append({"kind": "score", "model": model, "version": job.get("version"),
                     "state": job.get("status"), "where": where,
                     "age_seconds": _age(now, job.get("started_at")),
                     "ended_at": ended if job.get("status") != RUNNING else None,
                     "attempts": None, "last_error": job.get("reason"), "message_id": None,
                     "object": job.get("key"), "rows_scored": job.get("rows_scored"),
                     "rows_rejected": job.get("rows_rejected"),
                     "manifest": job.get("manifest")})
    return rows


def _message_row(queue_name: str, m: dict[str, Any]) -> dict[str, Any]:
    state = m["state"]
    error = None
    if m.get("holder_alive") is False:
        state = "orphaned"
        error = (f"the worker holding it (pid {m.get('holder_pid')}) is gone; retried after "
                 f"{m.get('visible_in_s', 0):.0f} s")
    elif state == "queued" and m["attempts"]:
        state = "retrying"
    return {"kind": queue_name, "model": m.get("model"), "version": None, "state": state,
            "where": m["queue"], "age_seconds": m.get("age_seconds"), "attempts": m["attempts"],
            "last_error": error, "message_id": m["id"], "object": m.get("object")}


def _unwrap(body: dict[str, Any]) -> dict[str, Any]:
    """A scoring chunk's message ({"score_chunk": {model, key, index, ...}}) names its job."""
    chunk = body.get("score_chunk")
    return chunk if isinstance(chunk, dict) else body


def _model_of(body: dict[str, Any]) -> str | None:
    body = _unwrap(body)
    if body.get("model"):
        return str(body["model"])
    key = str(body.get("key") or "")
    parts = key.split("/")
    return parts[1] if len(parts) > 2 else None


def _messages(queue: Queue, model: str | None) -> list[dict[str, Any]]:
    """The queue's messages, when it can list them (optional: SQS and Storage Queues only
    count theirs without taking them)."""
    lister = getattr(queue, "pending_messages", None)
    if lister is None:
        return []
    out = []
    for m in lister():
        body = _unwrap(m.get("body") or {})
        owner = _model_of(body)
        if model is not None and owner != model:
            continue
        out.append({**m, "queue": queue.name, "model": owner,
                    "dataset_key": body.get("dataset_key"),
                    "object": (f"{body['key']} chunk {body['index']}" if "index" in body
                               else body.get("key") or body.get("dataset_key"))})
    return out
