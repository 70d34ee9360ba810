"""The validate use case: an uploaded dataset is validated once per (key, etag); pass -> a
training job on the train queue, fail -> a quarantined copy + report (never deleted)."""

from __future__ import annotations

from typing import Any, BinaryIO, cast

from mlops_kit.core import layout
from mlops_kit.core.context import Context, load_spec, to_json
from mlops_kit.core.datasets import HashingReader
from mlops_kit.core.validation.validator import detect_format, validate_dataset


def validate_upload(ctx: Context, model: str, key: str, *, etag: str | None = None,
                    version_id: str | None = None) -> dict[str, Any]:
    """Validate an uploaded dataset. Idempotent per (key, etag): a redelivered event for the
    same object does nothing twice. Pass -> a training job; fail -> quarantine copy + report."""
    info = ctx.store.head(key)
    etag = etag or info.etag
    marker_sk = f"VALIDATED#{key}#{etag}"
    done = ctx.table.get("IDEMPOTENCY", marker_sk)
    if done is not None:
        return {**done.get("outcome", {}), "duplicate": True}
    filename = key.rsplit("/", 1)[-1]
    spec = load_spec(ctx.store, model)
    fmt = detect_format(filename)
    with ctx.store.open(key) as raw:
        reader = HashingReader(raw)
        result = validate_dataset(cast(BinaryIO, reader), fmt, spec)
        sha256 = reader.drain()
    stamp = ctx.clock.now().strftime("%Y%m%dT%H%M%S")
    report = {
        **result.report,
        "model": model,
        "dataset_key": key,
        "etag": etag,
        "version_id": version_id,
        "sha256": sha256,
        "spec_hash": spec.spec_hash(),
        "validated_at": ctx.clock.now().isoformat(),
    }
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
            "spec_hash": spec.spec_hash(),
            # the monitor writes retrain-<stamp> datasets when drift triggers a retrain
            "trigger": "drift" if filename.startswith("retrain-") else "upload",
        }
        ctx.train_queue.send(job)
        outcome.update(status="validated", profile_key=profile_key)
    else:
        qkey = layout.quarantine_key(model, filename)
        ctx.store.copy(key, qkey)  # a copy: the original upload is never deleted
        ctx.store.put(qkey + ".report.json", to_json(report), content_type="application/json")
        outcome.update(status="quarantined", quarantine_key=qkey,
                       quarantine_report_key=qkey + ".report.json")
        ctx.notifier.publish(
            f"mlops-kit: dataset for {model} quarantined",
            {"event": "quarantined", "model": model, "dataset_key": key, "quarantine_key": qkey,
             "summary": result.report.get("summary")},
        )
    # The marker is written last: a crash before it means the event is simply processed again.
    ctx.table.put("IDEMPOTENCY", marker_sk, {"outcome": outcome, "at": ctx.clock.now().isoformat()})
    return outcome
