"""The train use case: train -> export ONNX -> parity -> register -> promote, idempotent by
run key; artifacts first, registry entry last.

Once a version is reserved, every final failure (bad params, unreadable data, a model that
cannot train, a bug) completes it as `failed` with the reason and notifies: it never stays
`pending`. A retryable failure propagates (the version stays pending; the redelivered job
resumes it)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from typing import Any, BinaryIO, cast

from mlops_kit.core import layout
from mlops_kit.core.context import Context, load_spec, to_json
from mlops_kit.core.datasets import HashingReader
from mlops_kit.core.features import columns_to_inputs
from mlops_kit.core.metrics import compute_metrics, positive_label
from mlops_kit.core.monitoring.drift import build_prediction_profile
from mlops_kit.core.outcomes import failure, log_failure
from mlops_kit.core.registry import FAILED, PENDING, REGISTERED, REJECTED, decide_promotion
from mlops_kit.core.registry.contract import input_contract
from mlops_kit.core.serving.service import ModelService
from mlops_kit.core.spec import ModelSpec
from mlops_kit.core.training import runs
from mlops_kit.core.training.estimators import check_params
from mlops_kit.core.training.experiment import TrainSteps, fail_run, run_search, trial_job
from mlops_kit.core.training.export import parity_check, to_onnx
from mlops_kit.core.training.fit import read_frame, text_term_profiles, train
from mlops_kit.core.validation.validator import detect_format
from mlops_kit.errors import (
    MlopsKitError,
    NotFound,
    PromotionRefused,
    RegistryConflict,
    describe,
    is_retryable,
)

log = logging.getLogger("mlops_kit.train")
ACTOR = "mlops-kit/train"


def train_job(ctx: Context, job: dict[str, Any]) -> dict[str, Any]:
    """Train -> export -> parity -> register -> promote. Idempotent on (dataset sha256, spec
    hash); artifacts are written before the registry entry, so a crash leaves at most a
    `pending` version (never served) that the retry completes. A spec with a `search` runs an
    experiment instead of one fit (core/training/experiment.py); its trials fanned out on the
    train queue come back here as `{"type": "trial", ...}` messages."""
    if job.get("type") == "trial":
        try:
            return trial_job(ctx, job, STEPS)
        except Exception as exc:  # noqa: BLE001 - as below: a final failure ends run and version
            if is_retryable(exc):
                raise
            fail_run(ctx, job["model"], int(job["run"]), describe(exc))
            return _fail_version(ctx, job["model"], int(job["run"]), exc)
    model = job["model"]
    spec = load_spec(ctx.store, model)
    run_key, lineage = runs.run_key(job, spec), runs.lineage(job, spec)
    reservation = ctx.registry.reserve_version(model, run_key, lineage)
    version = reservation.version
    if not reservation.created and runs.unchanged(job, reservation.record):
        return runs.unchanged_outcome(ctx, model, version, reservation.record, job)
    lineage = {**lineage, **(reservation.record.get("lineage") or {})}  # as reserved (engine)
    if reservation.record.get("status") != PENDING:
        return _resume_promotion(ctx, model, version, reservation.record)
    try:
        return _train_version(ctx, spec, job, version, lineage)
    except Exception as exc:  # noqa: BLE001 - classified: retry, or the version fails for good
        if is_retryable(exc):
            raise
        if spec.search is not None:
            fail_run(ctx, model, version, describe(exc))
        return _fail_version(ctx, model, version, exc)


def _fail_version(ctx: Context, model: str, version: int, exc: Exception) -> dict[str, Any]:
    """A final failure: the version becomes `failed` with the reason, and a notification."""
    log_failure("train", exc, model=model, version=version)
    fields: dict[str, Any] = {"status": FAILED, "reasons": [describe(exc)],
                              "error_type": type(exc).__name__}
    if isinstance(exc, MlopsKitError) and exc.field:
        fields["field"] = exc.field
    record = ctx.registry.complete_version(model, version, fields)
    reasons = list(record.get("reasons") or [])
    if record["status"] != FAILED:  # completed before the failure (e.g. during the promotion)
        reasons.append(f"not promoted: {describe(exc)}")
    out = failure(exc, model=model, version=version, reasons=reasons, promoted=False)
    out["status"] = record["status"]
    ctx.notifier.publish(
        f"mlops-kit: {model} v{version} {record['status']}",
        {"event": "trained", "model": model, "version": version, "status": record["status"],
         "promoted": False, "reasons": out["reasons"], "error_type": type(exc).__name__},
    )
    return out


def _train_version(ctx: Context, spec: ModelSpec, job: dict[str, Any], version: int,
                   lineage: dict[str, Any]) -> dict[str, Any]:
    model = spec.name
    if spec.search is None:  # a search checks its candidates (experiment.py)
        check_params(spec)  # before any data is read: a bad param fails the version at once
    df = _read_frame(ctx, job, spec)
    if df is None:
        ctx.registry.complete_version(model, version, {
            "status": REJECTED, "reasons": ["dataset changed after validation; the new upload "
                                            "is validated and trained on its own"]})
        return {"status": "stale", "model": model, "version": version}
    ctx.step("read", version=version, rows=len(df))
    if spec.search is not None:
        return run_search(ctx, job, spec, version, lineage, df, STEPS)
    return _register(ctx, job, spec, version, lineage, train(spec, df))


def _read_frame(ctx: Context, job: dict[str, Any], spec: ModelSpec):
    """The validated dataset as a training frame; None if it changed since validation."""
    fmt = detect_format(job["dataset_key"])
    with ctx.store.open(job["dataset_key"]) as raw, tempfile.SpooledTemporaryFile(64 << 20) as tmp:
        reader = HashingReader(raw)
        if fmt == "parquet":  # Parquet needs a seekable file: spool it (to disk past 64 MB)
            shutil.copyfileobj(reader, tmp, 1 << 20)
            tmp.seek(0)
            df = read_frame(cast(BinaryIO, tmp), fmt, spec)
        else:
            df = read_frame(cast(BinaryIO, reader), fmt, spec)
        sha = reader.drain()
    return df if sha == job["sha256"] else None


def _register(ctx: Context, job: dict[str, Any], spec: ModelSpec, version: int, lineage: dict,
              result, *, fitted_spec: ModelSpec | None = None,
              experiment: dict[str, Any] | None = None) -> dict[str, Any]:
    """Export, parity, artifacts, gates, registry entry (last), promotion, notification.
    `fitted_spec`: the spec the pipeline was fitted from (a search's winner) when it differs
    from the user's `spec`, which is what spec.json and the spec hash keep recording."""
    model = spec.name
    fitted = fitted_spec or spec
    ctx.step("trained", version=version, estimator=fitted.estimator.kind, rows=result.rows_train)
    reasons: list[str] = []
    try:
        onnx_bytes = to_onnx(fitted, result.pipeline, spec_hash=spec.spec_hash())
        ctx.step("exported", version=version, bytes=len(onnx_bytes))
        parity = parity_check(fitted, result.pipeline, onnx_bytes, result.X_holdout,
                              spec.promotion.parity_tolerance, optimize=True)
        parity_d = parity.to_dict()
        ctx.step("parity", version=version, parity=parity_d)
        if not parity.passed:
            reasons.append(f"parity gate failed: {parity.reason}")
    except MlopsKitError as exc:
        onnx_bytes, parity_d = None, {"passed": False, "reason": exc.message}
        reasons.append(f"ONNX export failed: {exc.message}")
        parity = None

    prefix = layout.model_prefix(model, version)
    sha256 = ort_sha256 = None
    if onnx_bytes is not None:
        sha256 = hashlib.sha256(onnx_bytes).hexdigest()
        ctx.store.put(prefix + layout.MODEL_FILE, onnx_bytes,
                      content_type="application/octet-stream")
        # the optimised graph serving loads first, only when the gate checked it
        ort_bytes = parity.optimized_model if parity is not None and parity.passed else None
        if ort_bytes is not None:
            ort_sha256 = hashlib.sha256(ort_bytes).hexdigest()
            ctx.store.put(prefix + layout.OPTIMIZED_MODEL_FILE, ort_bytes,
                          content_type="application/octet-stream")
    ctx.store.put(prefix + "spec.json", spec.canonical_json().encode(), content_type="application/json")
    reference = json.loads(ctx.store.get(job["profile_key"])) if job.get("profile_key") else {}
    reference["predictions"] = build_prediction_profile(result.holdout_predictions, spec.task.value)
    for name, terms in text_term_profiles(fitted, result).items():  # the model's words (drift)
        reference.setdefault("features", {}).setdefault(name, {})["terms"] = terms
    ctx.store.put(prefix + "profile.json", to_json(reference), content_type="application/json")
    ctx.store.put(prefix + "metrics.json", to_json(result.metrics), content_type="application/json")

    champion_metrics, champion_version, basis = _champion_on_holdout(ctx, spec, result)
    promote, why_not, gates = decide_promotion(
        spec.promotion, spec.higher_is_better(), result.metrics, parity_d.get("passed", False),
        champion_metrics, basis=basis, cv_std=result.cv_std,
    )
    record = {
        "status": REGISTERED if not reasons else REJECTED,
        "reasons": reasons or why_not,
        "sha256": sha256,
        "artifact_key": prefix + layout.MODEL_FILE if onnx_bytes else None,
        "ort_sha256": ort_sha256,  # model.ort's; None: serve model.onnx
        "metrics": result.metrics,
        "parity": parity_d,
        "params": result.params,
        "classes": result.classes,
        **_positive(spec, result.classes),
        "task": spec.task.value,
        "contract": input_contract(spec),  # what its callers must send (registry.contract)
        "rows_train": result.rows_train,
        "rows_holdout": result.rows_holdout,
        "gates": gates,
        "requires_approval": spec.promotion.require_approval,
        "approved": False,
        "lineage": lineage if experiment is None else {**lineage, "experiment": experiment},
    }
    card = {"model": model, "version": version, "description": spec.description, **record}
    ctx.store.put(prefix + "card.json", to_json(card), content_type="application/json")
    # Registry entry last: only now does the version exist as registered/rejected.
    record = ctx.registry.complete_version(model, version, record)
    ctx.step(str(record["status"]), version=version)
    outcome: dict[str, Any] = {"status": record["status"], "model": model, "version": version,
                               **({"run": version} if experiment is not None else {}),
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


STEPS = TrainSteps(read=_read_frame, register=_register)


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


def _champion_on_holdout(ctx: Context, spec: ModelSpec,
                         result) -> tuple[dict | None, int | None, str | None]:
    """The champion's metrics to compare with, and on what basis. Re-scored on the candidate's
    holdout (like with like) when it can be: same features, same label set. Otherwise its
    recorded metrics (from its own holdout), and the basis says why: a champion trained on
    yes/no labels cannot be scored against 0/1 labels (every metric would be NaN)."""
    version = ctx.registry.champion_version(spec.name)
    if version is None:
        return None, None, None
    record = ctx.registry.get_version(spec.name, version)
    recorded = record.get("metrics")
    if spec.task.is_classification and not _same_labels(record.get("classes"), result.classes):
        return recorded, version, (
            f"the champion's recorded metrics: its classes {record.get('classes')} differ from "
            f"the candidate's {result.classes}, so it cannot be re-scored on this holdout")
    try:
        champion = ModelService(ctx.store, ctx.registry).load_version(spec.name, version)
        if not set(champion.spec.feature_names) <= set(result.X_holdout.columns):
            raise NotFound("its features differ from the candidate's")
        # The holdout is already in the serving encoding (as the parity gate feeds it).
        X = result.X_holdout
        out = champion.run(columns_to_inputs(champion.spec, {c: X[c].tolist() for c in X}))
        metrics = compute_metrics(spec.task.value, result.y_holdout, out["predictions"],
                                  out.get("probabilities"), champion.classes, spec.positive_class)
        return metrics, version, "the champion re-scored on the candidate's holdout"
    except MlopsKitError as exc:
        log.warning("champion v%s not re-scored on the holdout (%s); using its recorded metrics",
                    version, exc.message)
        return recorded, version, f"the champion's recorded metrics: not re-scored ({exc.message})"


def _positive(spec: ModelSpec, classes: list | None) -> dict[str, Any]:
    """A binary version records the class its F1 is about (registry show, console, reports)."""
    if spec.task.value != "binary_classification" or not classes or len(classes) != 2:
        return {}
    try:
        return {"positive_class": positive_label(classes, spec.positive_class)}
    except ValueError:
        return {}


def _same_labels(a: list | None, b: list | None) -> bool:
    return a is not None and b is not None and {str(x) for x in a} == {str(x) for x in b}
