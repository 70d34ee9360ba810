"""Lifecycle use cases: what happens when an object lands, when a dataset validates, when a
training job runs. Pure orchestration over ports; the local runtime and the cloud handlers
call these and nothing else."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from mlops_kit import __version__
from mlops_kit.core import layout
from mlops_kit.core.registry.model_registry import REGISTERED, REJECTED, Registry, decide_promotion
from mlops_kit.core.spec import ModelSpec, load_spec_bytes
from mlops_kit.errors import (
    MlopsKitError,
    NotFound,
    PromotionRefused,
    RegistryConflict,
    SpecError,
)
from mlops_kit.ports import Clock, KeyValueTable, Notifier, ObjectStore, Queue

log = logging.getLogger("mlops_kit.lifecycle")
ACTOR = "mlops-kit/train"


@dataclass
class Context:
    """Everything a use case may touch. Built by mlops_kit.bootstrap (the composition root)."""

    store: ObjectStore
    table: KeyValueTable
    train_queue: Queue
    notifier: Notifier
    clock: Clock
    registry: Registry = field(init=False)

    def __post_init__(self) -> None:
        self.registry = Registry(self.table, self.clock, self.notifier)


class HashingReader:
    """Wraps a binary stream; sha256 of everything read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
        self.raw.close()

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return self.sha.hexdigest()


def load_spec(store: ObjectStore, model: str) -> ModelSpec:
    for key in layout.spec_keys(model):
        if store.exists(key):
            spec = load_spec_bytes(store.get(key), source=key)
            if spec.name != model:
                raise SpecError(f"{key}: name is {spec.name!r} but the file is for {model!r}",
                                field="name")
            return spec
    raise SpecError(
        f"no spec for model {model!r}: upload specs/{model}.yaml first (mlops-kit spec apply)",
        field="model",
    )


def _json(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=str).encode()


# -- object created ----------------------------------------------------------------------


def on_object_created(ctx: Context, key: str, etag: str | None = None,
                      version_id: str | None = None) -> dict[str, Any]:
    parsed = layout.parse_key(key)
    if parsed.kind == "dataset":
        return validate_upload(ctx, parsed.model, key, etag=etag, version_id=version_id)
    if parsed.kind == "labels":
        from mlops_kit.core.monitoring.monitor import ingest_labels

        return ingest_labels(ctx, parsed.model, key)
    return {"status": "ignored", "key": key, "reason": f"{parsed.kind} objects start nothing"}


def validate_upload(ctx: Context, model: str, key: str, *, etag: str | None = None,
                    version_id: str | None = None) -> dict[str, Any]:
    """Validate an uploaded dataset. Idempotent per (key, etag): a redelivered event for the
    same object does nothing twice. Pass -> a training job; fail -> quarantine copy + report."""
    from mlops_kit.core.validation.validator import detect_format, validate_dataset

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
        result = validate_dataset(reader, fmt, spec)
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
    report_key = f"{layout.REPORTS}{model}/validation/{filename}.{stamp}.{etag[:8]}.json"
    ctx.store.put(report_key, _json(report), content_type="application/json")
    outcome: dict[str, Any] = {
        "model": model, "dataset_key": key, "passed": result.passed, "rows": result.rows,
        "report_key": report_key, "sha256": sha256, "summary": result.report.get("summary"),
    }
    if result.passed:
        profile_key = report_key[: -len(".json")] + ".profile.json"
        ctx.store.put(profile_key, _json(result.profile), content_type="application/json")
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
        ctx.store.put(qkey + ".report.json", _json(report), content_type="application/json")
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


# -- training ----------------------------------------------------------------------------


def train_job(ctx: Context, job: dict[str, Any]) -> dict[str, Any]:
    """Train -> export -> parity -> register -> promote. Idempotent on (dataset sha256, spec
    hash); artifacts are written before the registry entry, so a crash leaves at most a
    `pending` version (never served) that the retry completes."""
    from mlops_kit.core.monitoring.drift import build_prediction_profile
    from mlops_kit.core.training.export import parity_check, to_onnx
    from mlops_kit.core.training.pipeline import read_frame, train
    from mlops_kit.core.validation.validator import detect_format

    model = job["model"]
    spec = load_spec(ctx.store, model)
    run_key = f"{job['sha256']}:{spec.spec_hash()[:16]}"
    lineage = {
        "dataset_key": job["dataset_key"], "dataset_etag": job.get("etag"),
        "dataset_version_id": job.get("version_id"), "dataset_sha256": job["sha256"],
        "rows": job.get("rows"), "validation_report": job.get("report_key"),
        "spec_hash": spec.spec_hash(), "package_version": __version__,
        "estimator": spec.estimator.kind, "trigger": job.get("trigger", "upload"),
    }
    reservation = ctx.registry.reserve_version(model, run_key, lineage)
    version = reservation.version
    if reservation.record.get("status") != "pending":
        return _resume_promotion(ctx, model, version, reservation.record)

    fmt = detect_format(job["dataset_key"])
    with ctx.store.open(job["dataset_key"]) as raw, tempfile.SpooledTemporaryFile(64 << 20) as tmp:
        reader = HashingReader(raw)
        if fmt == "parquet":  # Parquet needs a seekable file: spool it (to disk past 64 MB)
            shutil.copyfileobj(reader, tmp, 1 << 20)
            tmp.seek(0)
            df = read_frame(tmp, fmt, spec)
        else:
            df = read_frame(reader, fmt, spec)
        sha = reader.drain()
    if sha != job["sha256"]:
        ctx.registry.complete_version(model, version, {
            "status": REJECTED, "reasons": ["dataset changed after validation; the new upload "
                                            "is validated and trained on its own"]})
        return {"status": "stale", "model": model, "version": version}

    result = train(spec, df)
    reasons: list[str] = []
    try:
        onnx_bytes = to_onnx(spec, result.pipeline)
        parity = parity_check(spec, result.pipeline, onnx_bytes, result.X_holdout,
                              spec.promotion.parity_tolerance)
        parity_d = parity.to_dict()
        if not parity.passed:
            reasons.append(f"parity gate failed: {parity.reason}")
    except MlopsKitError as exc:
        onnx_bytes, parity_d = None, {"passed": False, "reason": exc.message}
        reasons.append(f"ONNX export failed: {exc.message}")

    prefix = layout.model_prefix(model, version)
    sha256 = None
    if onnx_bytes is not None:
        sha256 = hashlib.sha256(onnx_bytes).hexdigest()
        ctx.store.put(prefix + "model.onnx", onnx_bytes, content_type="application/octet-stream")
    ctx.store.put(prefix + "spec.json", spec.canonical_json().encode(), content_type="application/json")
    reference = json.loads(ctx.store.get(job["profile_key"])) if job.get("profile_key") else {}
    reference["predictions"] = build_prediction_profile(result.holdout_predictions, spec.task.value)
    ctx.store.put(prefix + "profile.json", _json(reference), content_type="application/json")
    ctx.store.put(prefix + "metrics.json", _json(result.metrics), content_type="application/json")

    champion_metrics, champion_version = _champion_on_holdout(ctx, spec, result)
    promote, why_not, gates = decide_promotion(
        spec.promotion, spec.higher_is_better(), result.metrics, parity_d.get("passed", False),
        champion_metrics,
    )
    record = {
        "status": REGISTERED if not reasons else REJECTED,
        "reasons": reasons or why_not,
        "sha256": sha256,
        "artifact_key": prefix + "model.onnx" if onnx_bytes else None,
        "metrics": result.metrics,
        "parity": parity_d,
        "params": result.params,
        "classes": result.classes,
        "task": spec.task.value,
        "rows_train": result.rows_train,
        "rows_holdout": result.rows_holdout,
        "gates": gates,
        "requires_approval": spec.promotion.require_approval,
        "approved": False,
        "lineage": lineage,
    }
    card = {"model": model, "version": version, "description": spec.description, **record}
    ctx.store.put(prefix + "card.json", _json(card), content_type="application/json")
    # Registry entry last: only now does the version exist as registered/rejected.
    record = ctx.registry.complete_version(model, version, record)
    outcome = {"status": record["status"], "model": model, "version": version,
               "metrics": result.metrics, "parity": parity_d, "reasons": record["reasons"],
               "champion_before": champion_version, "promoted": False}
    if record["status"] == REGISTERED and promote and not spec.promotion.require_approval:
        try:
            metric = spec.promotion.metric
            ctx.registry.promote(model, version, actor=ACTOR,
                                 reason=f"{metric}={result.metrics.get(metric):.4f} passed the "
                                        "promotion policy",
                                 expected=champion_version)
            outcome["promoted"] = True
        except (RegistryConflict, PromotionRefused) as exc:
            outcome["reasons"] = [*outcome["reasons"], f"not promoted: {exc.message}"]
    elif record["status"] == REGISTERED and promote:
        outcome["reasons"] = [*outcome["reasons"], "awaiting manual approval"]
    ctx.notifier.publish(
        f"mlops-kit: {model} v{version} {record['status']}"
        f"{' and promoted' if outcome['promoted'] else ''}",
        {"event": "trained", **{k: outcome[k] for k in ("model", "version", "status", "promoted",
                                                         "reasons")}},
    )
    return outcome


def _resume_promotion(ctx: Context, model: str, version: int, record: dict) -> dict[str, Any]:
    """A redelivered job whose version is already complete. If the first run died (or lost the
    response) between the registry write and the promotion the policy granted, finish the
    promotion now -- unless the alias ever pointed at this version or a newer one is champion."""
    out = {"status": "duplicate", "model": model, "version": version,
           "registry_status": record.get("status"), "promoted": False}
    champion = ctx.registry.champion_version(model)
    if (record.get("status") == REGISTERED and not record.get("reasons")
            and not record.get("requires_approval") and (champion or 0) < version
            and not any(h.get("to_version") == version for h in ctx.registry.history(model))):
        try:
            ctx.registry.promote(model, version, actor=ACTOR, expected=champion,
                                 reason="promotion resumed after an interrupted training job")
            out["promoted"] = True
        except (RegistryConflict, PromotionRefused) as exc:
            out["reasons"] = [f"not promoted: {exc.message}"]
    return out


def _champion_on_holdout(ctx: Context, spec: ModelSpec, result) -> tuple[dict | None, int | None]:
    """Score the current champion on the candidate's holdout, so the gain gate compares like
    with like. Falls back to the champion's recorded metrics if its features differ."""
    from mlops_kit.core.features import columns_to_inputs
    from mlops_kit.core.metrics import compute_metrics
    from mlops_kit.core.serving.service import ModelService

    version = ctx.registry.champion_version(spec.name)
    if version is None:
        return None, None
    try:
        champion = ModelService(ctx.store, ctx.registry).load_version(spec.name, version)
        if not set(champion.spec.feature_names) <= set(result.X_holdout.columns):
            raise NotFound("champion features differ")
        # The holdout is already in the serving encoding (as the parity gate feeds it).
        X = result.X_holdout
        out = champion.run(columns_to_inputs(champion.spec, {c: X[c].tolist() for c in X}))
        metrics = compute_metrics(spec.task.value, result.y_holdout, out["predictions"],
                                  out.get("probabilities"), champion.classes)
        return metrics, version
    except MlopsKitError as exc:
        log.warning("champion v%s not re-scored on the holdout (%s); using its recorded metrics",
                    version, exc.message)
        return ctx.registry.get_version(spec.name, version).get("metrics"), version
