"""sklearn pipeline -> ONNX bytes, and the parity gate that proves the two agree.

The gate feeds the ONNX model through `features.columns_to_inputs`, the same encoding serving
uses, so a model that passes here answers the same way behind the HTTP endpoint. It compares
probabilities too, not only labels: some converters get labels right with wrong probabilities.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from skl2onnx import to_onnx as _skl2onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from mlops_kit.core import layout, onnx_meta
from mlops_kit.core.features import columns_to_inputs
from mlops_kit.core.spec import CategoricalFeature, ModelSpec, TextFeature
from mlops_kit.core.training import date_cycles, forest_export, tree_v5
from mlops_kit.core.training.tree_attrs import fast_tree_attributes
from mlops_kit.errors import ExportError

log = logging.getLogger("mlops_kit.training")

__all__ = ["ML_OPSET", "TARGET_OPSET", "ParityResult", "parity_check", "to_onnx"]

# Pinned so a converter upgrade cannot silently change the graph. 17 / ai.onnx.ml 3 run on every
# onnxruntime >= 1.13 (pyproject asks for >= 1.18) and are tested by skl2onnx >= 1.14.
TARGET_OPSET = 17
ML_OPSET = 3
date_cycles.register()  # datetime features' parts: our converter


def to_onnx(spec: ModelSpec, pipeline: Any, *, spec_hash: str | None = None,
            fast_trees: bool = True) -> bytes:
    """Convert a fitted pipeline from training.build_pipeline; one input per feature.
    `spec_hash`: the user's spec when `spec` is a search winner's derived spec.
    fast_trees: tree attributes computed per tree in numpy (tree_attrs), and random forests'
    tree node filled in place (forest_export): the same operator and values as skl2onnx's."""
    initial_types = [
        (
            f.name,
            StringTensorType([None, 1])
            if isinstance(f, (CategoricalFeature, TextFeature))
            else FloatTensorType([None, 1]),  # numeric and boolean (1.0 / 0.0)
        )
        for f in spec.features
    ]
    try:
        check_is_fitted(pipeline)
    except (NotFittedError, TypeError, AttributeError):
        raise ExportError(
            f"cannot convert {spec.estimator.kind} to ONNX: the pipeline is not fitted"
        ) from None
    estimator = pipeline.steps[-1][1]
    classifier = spec.task.is_classification

    def convert(pipe: Any, est: Any) -> onnx.ModelProto:
        return _skl2onnx(pipe, initial_types=initial_types,
                         target_opset={"": TARGET_OPSET, "ai.onnx.ml": ML_OPSET},
                         options={id(est): {"zipmap": False}} if classifier else None)

    fill: Callable[[], None] = lambda: None  # noqa: E731
    try:
        if fast_trees and forest_export.applies(pipeline):
            model, fill = forest_export.convert(pipeline, convert)
        else:
            with fast_tree_attributes() if fast_trees else nullcontext():
                model = convert(pipeline, estimator)
    except Exception as exc:  # noqa: BLE001 - converter errors come in every type
        raise ExportError(
            f"cannot convert {spec.estimator.kind} to ONNX: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    # skl2onnx renames inputs ONNX cannot carry ("mean radius" -> "mean_radius", a clash gets a
    # suffix), keeping their order: record the map so every caller feeds by feature name.
    inputs = [i.name for i in model.graph.input]
    if len(inputs) != len(spec.feature_names):
        raise ExportError(f"the ONNX graph has {len(inputs)} inputs for "
                          f"{len(spec.feature_names)} features")
    meta = {onnx_meta.FEATURES_KEY: json.dumps(spec.feature_names),
            onnx_meta.INPUTS_KEY: json.dumps(dict(zip(spec.feature_names, inputs,
                                                      strict=True)))}
    if classifier:
        classes = [_native(c) for c in estimator.classes_]
        meta[onnx_meta.CLASSES_KEY] = json.dumps(classes)
    meta["mlops_kit.model"] = spec.name
    meta["mlops_kit.spec_sha256"] = spec_hash or spec.spec_hash()
    onnx.helper.set_model_props(model, meta)
    model.doc_string = f"mlops-kit {spec.name}: {spec.task.value} ({spec.estimator.kind})"
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"exported ONNX graph is invalid: {str(exc).splitlines()[0]}") from None
    try:
        fill()  # a forest's trees, after the check (it serialises the whole model)
    except Exception as exc:  # noqa: BLE001 - same contract as the converter's errors
        raise ExportError(f"cannot convert {spec.estimator.kind} to ONNX: "
                          f"{type(exc).__name__}: {exc}") from None
    return model.SerializeToString()


@dataclass
class ParityResult:
    passed: bool
    rows: int
    label_agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    tolerance: float
    reason: str | None = None
    near_ties: int = 0  # label disagreements excused because sklearn's top-2 margin < tolerance
    outputs: tuple[str, str | None] | None = None
    # how `tolerance` is compared: "absolute" (probabilities: |sklearn - onnx|) or "relative"
    # (regression: |sklearn - onnx| / max(1, |sklearn|), so large targets are not penalised)
    tolerance_kind: str = "absolute"
    # the saved optimised graph (model.ort) when the gate made one: its check against the
    # ONNX graph's outputs ({"passed", "label_agreement", "max_abs_diff", "bytes", "reason"})
    # and, only when it passed, its bytes (never in to_dict)
    optimized: dict | None = None
    optimized_model: bytes | None = field(default=None, repr=False)

    @classmethod
    def failed(cls, rows: int, tolerance: float, reason: str) -> ParityResult:
        """A gate that could not compare at all (no rows, wrong shapes, model not runnable)."""
        inf = float("inf") if rows else 0.0
        return cls(False, rows, 0.0, inf, inf, tolerance, reason)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("optimized_model")
        out["outputs"] = list(self.outputs) if self.outputs else None
        return out


OnnxOutputs = tuple[np.ndarray, np.ndarray | None, tuple[str, str | None]]


def run_onnx(
    spec: ModelSpec, onnx_bytes: bytes, X: pd.DataFrame, threads: int = 0, *,
    optimized: bool = False, save_optimized: str | None = None,
) -> OnnxOutputs:
    """(labels-or-values, probabilities or None, output names) from onnxruntime, fed the
    serving encoding, with serving's session options (threads 0: onnxruntime's default).
    optimized / save_optimized: onnx_meta.session's (load an ORT-format graph; write one)."""
    session = onnx_meta.session(ort, onnx_bytes, threads, optimized=optimized,
                                save_optimized=save_optimized)
    label_name, proba_name = onnx_meta.output_names(session)
    feed = columns_to_inputs(spec, {col: X[col].tolist() for col in spec.feature_names})
    names = [label_name] + ([proba_name] if proba_name else [])
    result = session.run(names, onnx_meta.feed(onnx_meta.input_map(session), feed))
    values = np.asarray(result[0]).reshape(len(X), -1)
    values = values[:, 0] if values.shape[1] == 1 else values
    proba = np.asarray(result[1], dtype=np.float64) if proba_name else None
    return values, proba, (label_name, proba_name)


def parity_check(
    spec: ModelSpec,
    pipeline: Any,
    onnx_bytes: bytes,
    X_holdout: pd.DataFrame,
    tolerance: float | None = None,
    *,
    optimize: bool = False,
) -> ParityResult:
    """Does the ONNX graph answer like the sklearn pipeline on the holdout? Never raises for a
    disagreement: the result says why it failed.

    optimize: the session the gate opens also saves its optimised graph in onnxruntime's ORT
    format (what serving loads as model.ort, with no optimisation left to run at a cold start);
    that graph is then run on the same rows and must answer as the ONNX graph does (labels
    equal, probabilities or values within the tolerance). A mismatch or a failure never fails
    the gate: the version simply has no model.ort (result.optimized says why)."""
    tol = float(spec.promotion.parity_tolerance if tolerance is None else tolerance)
    rows = len(X_holdout)
    if rows == 0:
        return ParityResult.failed(0, tol, "no holdout rows to compare")
    # onnxruntime (session load + run, GIL released) on a second thread while sklearn
    # predicts on this one (its tree traversal releases the GIL too): a big forest's gate
    # takes the longer of the two instead of their sum.
    with ThreadPoolExecutor(max_workers=1) as pool:
        onnx_run = pool.submit(_onnx_side, spec, onnx_bytes, X_holdout, optimize)
        sk = _sklearn_outputs(spec, pipeline, X_holdout)
        try:
            (onnx_values, onnx_proba, outputs), ort_bytes = onnx_run.result()
        except Exception as exc:  # noqa: BLE001 - any runtime failure fails the gate
            detail = _first_line(exc)
            return ParityResult.failed(
                rows, tol, f"onnxruntime could not run the model: {type(exc).__name__}: {detail}"
            )
    if spec.task.is_classification:
        result = _classification_parity(*sk, onnx_values, onnx_proba, tol)
    else:
        result = _regression_parity(sk[0], onnx_values, tol)
    result.outputs = outputs
    if optimize:
        result.optimized, result.optimized_model = _optimized_check(
            spec, ort_bytes, X_holdout, (onnx_values, onnx_proba), tol)
    return result


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else ""


def _onnx_side(spec: ModelSpec, onnx_bytes: bytes, X: pd.DataFrame, optimize: bool
               ) -> tuple[OnnxOutputs, bytes | BaseException | None]:
    """The ONNX graph's outputs, and the ORT-format optimised graph its session saved (or why
    it could not: the ONNX side still answers)."""
    if not optimize:
        return run_onnx(spec, onnx_bytes, X, 1), None
    with tempfile.TemporaryDirectory(prefix="mlops-kit-ort-") as tmp:
        path = os.path.join(tmp, layout.OPTIMIZED_MODEL_FILE)
        served = _opset5_trees(onnx_bytes)
        if served is not None:  # model.ort from the opset-5 trees (tree_v5: faster to load)
            out = run_onnx(spec, onnx_bytes, X, 1)
            try:
                onnx_meta.session(ort, served, 1, save_optimized=path)
                with open(path, "rb") as f:
                    return out, f.read()
            except Exception:  # noqa: BLE001 - this onnxruntime cannot: save skl2onnx's graph
                log.warning("opset-5 tree graph not saved; model.ort from model.onnx")
        try:
            out = run_onnx(spec, onnx_bytes, X, 1, save_optimized=path)
        except Exception:  # noqa: BLE001 - was it the save? retry without it to tell
            return run_onnx(spec, onnx_bytes, X, 1), RuntimeError("saving it failed")
        try:
            with open(path, "rb") as f:
                return out, f.read()
        except OSError as exc:
            return out, exc


def _opset5_trees(onnx_bytes: bytes) -> bytes | None:
    """The graph with its tree ensemble in opset-5 form (tree_v5), None when not rewritten."""
    try:
        return tree_v5.rewrite(onnx_bytes)
    except Exception:  # noqa: BLE001 - an optimisation only: model.ort from model.onnx
        log.warning("opset-5 tree rewrite failed; model.ort from model.onnx", exc_info=True)
        return None


def _optimized_check(spec: ModelSpec, ort_bytes: bytes | BaseException | None, X: pd.DataFrame,
                     expected: tuple[np.ndarray, np.ndarray | None], tol: float
                     ) -> tuple[dict, bytes | None]:
    """Does the saved optimised graph answer as the ONNX graph did on the same rows?"""
    if not isinstance(ort_bytes, bytes):
        return {"passed": False, "reason": f"no optimised graph: {_first_line(ort_bytes)}"
                if ort_bytes is not None else "no optimised graph"}, None
    try:
        values, proba, _ = run_onnx(spec, ort_bytes, X, 1, optimized=True)
    except Exception as exc:  # noqa: BLE001 - an unloadable artifact is simply not shipped
        return {"passed": False, "reason": f"onnxruntime could not run the optimised graph: "
                                           f"{type(exc).__name__}: {_first_line(exc)}"}, None
    want_values, want_proba = expected
    same = values.shape == want_values.shape
    agreement = float(np.mean(values == want_values)) if same and len(values) else 0.0
    if spec.task.is_classification:
        if proba is None or want_proba is None:
            ok_shape, diff = same and proba is None and want_proba is None, 0.0
        else:
            ok_shape = same and proba.shape == want_proba.shape
            diff = float(np.max(np.abs(proba - want_proba), initial=0.0)) if ok_shape \
                else float("inf")
        passed = ok_shape and agreement == 1.0 and diff <= tol
    else:
        a, b = np.asarray(values, np.float64), np.asarray(want_values, np.float64)
        diff = float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)), initial=0.0)) \
            if same else float("inf")
        passed = same and diff <= tol
    check = {"passed": bool(passed), "label_agreement": agreement, "max_abs_diff": diff,
             "bytes": len(ort_bytes),
             "reason": None if passed else "the optimised graph does not answer as the ONNX "
                                           "graph does"}
    return check, ort_bytes if passed else None


def _sklearn_outputs(spec: ModelSpec, pipeline: Any, X: pd.DataFrame
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """(labels, probabilities) of a classifier, (values, None) of a regressor."""
    if not spec.task.is_classification:
        return np.asarray(pipeline.predict(X)), None
    proba = pipeline.predict_proba(X)
    if forest_export.applies(pipeline):  # a forest's predict is exactly this: predict once
        return pipeline.steps[-1][1].classes_.take(np.argmax(proba, axis=1)), proba
    return pipeline.predict(X), proba


def _classification_parity(sk_labels, sk_proba, onnx_labels, onnx_proba, tol) -> ParityResult:
    rows = len(sk_labels)
    if onnx_proba is None or onnx_proba.shape != sk_proba.shape:
        shape = None if onnx_proba is None else onnx_proba.shape
        return ParityResult.failed(
            rows, tol, f"probability output shape {shape} differs from sklearn's {sk_proba.shape}"
        )
    # Compare labels as strings: ONNX returns int64 or str, sklearn may hold numpy scalars.
    agree = np.asarray(
        [str(a) == str(b) for a, b in zip(sk_labels.tolist(), onnx_labels.tolist(), strict=True)]
    )
    top2 = np.sort(sk_proba, axis=1)[:, -2:]
    near_tie = (top2[:, 1] - top2[:, 0]) < tol
    bad_labels = int(np.sum(~agree & ~near_tie))
    diff = np.abs(sk_proba - onnx_proba)
    row_diff = diff.max(axis=1)
    max_diff, mean_diff = float(diff.max()), float(diff.mean())
    reasons = []
    if bad_labels:
        first = int(np.flatnonzero(~agree & ~near_tie)[0])
        reasons.append(
            f"labels differ on {bad_labels} of {rows} rows (first row {first}: sklearn "
            f"{_native(sk_labels[first])!r}, onnx {_native(onnx_labels[first])!r})"
        )
    if not np.all(np.isfinite(onnx_proba)):
        reasons.append("onnx probabilities contain NaN or infinity")
    elif max_diff > tol:
        over = int(np.sum(row_diff > tol))
        reasons.append(f"probabilities differ by {max_diff:.3g} > {tol:g} on {over} rows")
    return ParityResult(
        passed=not reasons,
        rows=rows,
        label_agreement=float(agree.mean()),
        max_abs_diff=max_diff,
        mean_abs_diff=mean_diff,
        tolerance=tol,
        reason="; ".join(reasons) or None,
        near_ties=int(np.sum(~agree & near_tie)),
    )


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _regression_parity(sk_values, onnx_values, tol) -> ParityResult:
    rows = len(sk_values)
    sk = np.asarray(sk_values, dtype=np.float64).reshape(-1)
    ox = np.asarray(onnx_values, dtype=np.float64).reshape(-1)
    if ox.shape != sk.shape:
        failed = ParityResult.failed(
            rows, tol, f"onnx returned {ox.shape[0]} values for {sk.shape[0]} rows"
        )
        failed.tolerance_kind = "relative"
        return failed
    diff = np.abs(sk - ox)
    relative = diff / np.maximum(1.0, np.abs(sk))
    max_rel = float(relative.max()) if np.all(np.isfinite(ox)) else float("inf")
    reason = None
    if not np.all(np.isfinite(ox)):
        reason = "onnx predictions contain NaN or infinity"
    elif max_rel > tol:
        reason = (
            f"predictions differ by {max_rel:.3g} (relative to max(1, |y|)) > {tol:g} "
            f"on {int(np.sum(relative > tol))} rows"
        )
    within = relative <= tol
    return ParityResult(
        passed=reason is None,
        rows=rows,
        label_agreement=float(within.mean()),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        tolerance=tol,
        reason=reason,
        tolerance_kind="relative",
    )
