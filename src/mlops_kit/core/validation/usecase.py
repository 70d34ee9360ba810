"""The validate use case: an uploaded dataset is validated once per (key, etag, spec); pass -> a
training job on the train queue, fail -> a quarantined copy + report (never deleted).

A failure that no retry can fix (no spec for the model, a format we do not read, a bug) is final:
the upload is quarantined with a report naming the reason, a notification goes out and the
job ends. A retryable failure (the store or table unavailable) propagates: the message is
redelivered and may reach the dead-letter queue."""

from __future__ import annotations

from typing import Any, BinaryIO, cast

from mlops_kit.core import layout
from mlops_kit.core.context import Context, load_spec, to_json
from mlops_kit.core.datasets import HashingReader
from mlops_kit.core.outcomes import log_failure
from mlops_kit.core.sizing import estimate_from_profile
from mlops_kit.core.spec import ModelSpec
from mlops_kit.core.table_keys import IDEMPOTENCY_PK, validated_sk
from mlops_kit.core.validation.validator import detect_format, validate_dataset
from mlops_kit.errors import MlopsKitError, SpecError, describe, is_retryable


def validate_upload(ctx: Context, model: str, key: str, *, etag: str | None = None,
                    version_id: str | None = None) -> dict[str, Any]:
    """Validate an uploaded dataset. Idempotent per (key, etag, spec hash): a redelivered event
    for the same object does nothing twice, but the same file after a spec change is validated
    (and trained) again. Pass -> a training job; fail -> quarantine copy + report."""
    info = ctx.store.head(key)
    etag = etag or info.etag
    filename = key.rsplit("/", 1)[-1]
    try:
        spec: ModelSpec | None = load_spec(ctx.store, model)
        spec_error: SpecError | None = None
    except SpecError as exc:  # final: quarantined below with the reason
        spec, spec_error = None, exc
    spec_hash = spec.spec_hash() if spec is not None else None
    marker_sk = validated_sk(key, etag, spec_hash)
    done = ctx.table.get(IDEMPOTENCY_PK, marker_sk)
    if done is not None:
        return {**done.get("outcome", {}), "duplicate": True}
    base = {"model": model, "dataset_key": key, "etag": etag, "version_id": version_id,
            "spec_hash": spec_hash, "validated_at": ctx.clock.now().isoformat()}
    try:
        if spec_error is not None:
            raise spec_error
        assert spec is not None
        fmt = detect_format(filename)
        with ctx.store.open(key) as raw:
            reader = HashingReader(raw)
            result = validate_dataset(cast(BinaryIO, reader), fmt, spec)
            sha256 = reader.drain()
    except Exception as exc:  # noqa: BLE001 - classified: retry, or a final quarantine
        if is_retryable(exc):
            raise
        log_failure("validate", exc, model=model, key=key)
        quarantined = _quarantine(ctx, model, key, filename, {**base, **_failure_report(exc)})
        if isinstance(exc, MlopsKitError):  # a bug is not remembered: a fixed kit may pass it
            _mark(ctx, marker_sk, quarantined)
        return quarantined

    report = {**result.report, **base, "sha256": sha256}
    stamp = ctx.clock.now().strftime("%Y%m%dT%H%M%S")
    # The job's size: the train-queue consumer routes on it (core/sizing.py).
    size = estimate_from_profile(spec, rows=result.rows, nbytes=info.size,
                                 profile=result.profile).to_dict() if result.passed else None
    report["size"] = size
    report_key = layout.validation_report_key(model, filename, stamp, etag)
    ctx.store.put(report_key, to_json(report), content_type="application/json")
    outcome: dict[str, Any] = {
        "model": model, "dataset_key": key, "passed": result.passed, "rows": result.rows,
        "report_key": report_key, "sha256": sha256, "summary": result.report.get("summary"),
    }
    if result.passed:
        profile_key = report_key[: -len(".json")] + ".profile.json"
        ctx.store.put(profile_key, to_json(result.profile), content_type="application/json")
        job = {
            "type": "train", "model": model, "dataset_key": key, "etag": etag,
            "version_id": version_id, "sha256": sha256, "rows": result.rows,
            "report_key": report_key, "profile_key": profile_key,
            "spec_hash": spec_hash, "size": size,
            "content_hash": result.report.get("content_hash"),
            # the monitor writes retrain-<stamp> datasets when drift triggers a retrain
            "trigger": "drift" if filename.startswith("retrain-") else "upload",
        }
        ctx.train_queue.send(job)
        outcome.update(status="validated", profile_key=profile_key)
    else:
        outcome.update(_quarantine(ctx, model, key, filename, report))
    _mark(ctx, marker_sk, outcome)
    return outcome


def _mark(ctx: Context, marker_sk: str, outcome: dict[str, Any]) -> None:
    # The marker is written last: a crash before it means the event is simply processed again.
    ctx.table.put(IDEMPOTENCY_PK, marker_sk, {"outcome": outcome, "at": ctx.clock.now().isoformat()})


def _failure_report(exc: BaseException) -> dict[str, Any]:
    """A report for an upload that could not be validated at all, in the shape of a failed
    validation (one failed rule naming the reason)."""
    rule = ("spec" if isinstance(exc, SpecError)
            else "format" if isinstance(exc, MlopsKitError) else "internal_error")
    message = describe(exc)
    return {"passed": False, "rows": 0, "summary": f"failed: {message}",
            "rules": [{"rule": rule, "column": getattr(exc, "field", None), "passed": False,
                       "count": 1, "message": message, "examples": []}]}


def _quarantine(ctx: Context, model: str, key: str, filename: str,
                report: dict[str, Any]) -> dict[str, Any]:
    qkey = layout.quarantine_key(model, filename)
    ctx.store.copy(key, qkey)  # a copy: the original upload is never deleted
    ctx.store.put(qkey + ".report.json", to_json(report), content_type="application/json")
    ctx.notifier.publish(
        f"mlops-kit: dataset for {model} quarantined",
        {"event": "quarantined", "model": model, "dataset_key": key, "quarantine_key": qkey,
         "summary": report.get("summary")},
    )
    return {"status": "quarantined", "model": model, "dataset_key": key, "passed": False,
            "summary": report.get("summary"), "quarantine_key": qkey,
            "quarantine_report_key": qkey + ".report.json"}
