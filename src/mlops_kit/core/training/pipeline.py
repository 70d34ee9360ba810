"""Reading a dataset and training a sklearn pipeline from a model spec. Pure: no cloud, no env.

The frame `read_frame` returns is already in the serving encoding (see core/features.py):
numeric values are rounded through float32 (the ONNX graph takes float32, so sklearn and ONNX
see identical numbers) and categorical missing values are the MISSING_CATEGORY string.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_kit.core.features import MISSING_CATEGORY
from mlops_kit.core.metrics import compute_metrics
from mlops_kit.core.spec import ModelSpec
from mlops_kit.errors import TrainingError, ValidationError

__all__ = ["ESTIMATORS", "TrainResult", "build_pipeline", "read_frame", "train"]

ESTIMATORS: dict[str, type[BaseEstimator]] = {
    "logistic_regression": LogisticRegression,
    "random_forest": RandomForestClassifier,
    "gradient_boosting": GradientBoostingClassifier,
    "hist_gradient_boosting": HistGradientBoostingClassifier,
    "linear_regression": LinearRegression,
    "ridge": Ridge,
    "random_forest_regressor": RandomForestRegressor,
    "gradient_boosting_regressor": GradientBoostingRegressor,
}
# Only linear models get a StandardScaler. Trees are scale-invariant, and scaling breaks ONNX
# parity for them: sklearn scales in float64 then casts to float32 for the tree, ONNX scales in
# float32, the results differ by an ulp and rows right at a split threshold take the other
# branch (seen: probabilities off by 0.04 on 1% of rows for random_forest).
SCALED = {"logistic_regression", "linear_regression", "ridge"}
# Defaults that differ from sklearn's: LogisticRegression's 100 iterations warn on unscaled
# one-hot data far too often; it is still overridable through spec.estimator.params.
_DEFAULTS: dict[str, dict[str, Any]] = {"logistic_regression": {"max_iter": 1000}}


# -- reading ---------------------------------------------------------------------------------
def read_frame(stream: BinaryIO, fmt: Literal["csv", "parquet"], spec: ModelSpec) -> pd.DataFrame:
    """Read a CSV/Parquet dataset into a typed frame with the spec's features and target only."""
    wanted = [*spec.feature_names, spec.target]
    try:
        if fmt == "csv":
            table = _read_csv(stream, wanted)
        elif fmt == "parquet":
            table = _read_parquet(stream, wanted)
        else:
            raise ValidationError(f"unsupported dataset format {fmt!r}: use csv or parquet")
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ValidationError(
            f"cannot read {fmt} dataset: {str(exc).splitlines()[0]}", field="dataset"
        ) from None
    raw = {name: table.column(name).to_pylist() for name in wanted}
    out: dict[str, Any] = {}
    for nf in spec.numeric:
        out[nf.name] = _numeric(nf.name, raw[nf.name])
    for cf in spec.categorical:
        out[cf.name] = pd.Series(_categories(raw[cf.name]), dtype=object)
    out[spec.target] = _target(spec, raw[spec.target])
    return pd.DataFrame(out, columns=wanted)


def _read_csv(stream: BinaryIO, wanted: list[str]) -> pa.Table:
    # Every column is read as a string (only the empty string is null), then typed here, so a
    # category like "NA" or an id like "007" survives and the typing rules are ours, not arrow's.
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in wanted},
        include_columns=wanted,
        strings_can_be_null=True,
        null_values=[""],
        quoted_strings_can_be_null=True,
    )
    try:
        # Blocks at least as large as validation's (8 MB): a long row that validation read
        # must not fail here with "straddling object straddles two block boundaries".
        return pacsv.read_csv(stream, read_options=pacsv.ReadOptions(block_size=16 << 20),
                              convert_options=convert)
    except (pa.ArrowInvalid, KeyError) as exc:
        absent = _MISSING_COLUMN.search(str(exc))
        if absent:
            name = absent.group(1)
            raise ValidationError(
                f"column {name!r} is missing from the dataset", field=name
            ) from None
        raise


_MISSING_COLUMN = re.compile(r"Column '([^']*)' in include_columns does not exist")


def _read_parquet(stream: BinaryIO, wanted: list[str]) -> pa.Table:
    names = pq.read_schema(stream).names
    missing = [n for n in wanted if n not in names]
    if missing:
        raise ValidationError(
            f"column {missing[0]!r} is missing from the dataset", field=missing[0]
        )
    stream.seek(0)
    return pq.read_table(stream, columns=wanted)


def _numeric(name: str, values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, str) and v.strip() == ""):
            out[i] = math.nan
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            raise ValidationError(
                f"row {i}: column {name!r}: expected a number, got {str(v)[:40]!r}", field=name
            ) from None
        if not math.isfinite(out[i]):
            raise ValidationError(f"row {i}: column {name!r}: must be a finite number", field=name)
    # Round through float32: the ONNX graph sees float32, so sklearn must see the same values.
    return out.astype(np.float32).astype(np.float64)


def _categories(values: list) -> list[str]:
    out = []
    for v in values:
        if v is None or v == "" or (isinstance(v, float) and math.isnan(v)):
            out.append(MISSING_CATEGORY)
        else:
            out.append(str(v))  # the same str() serving applies (features.coerce_category)
    return out


def _target(spec: ModelSpec, values: list) -> np.ndarray:
    missing = [
        i for i, v in enumerate(values) if v is None or (isinstance(v, float) and math.isnan(v))
    ]
    if missing:
        raise ValidationError(
            f"target {spec.target!r} is missing on {len(missing)} rows (first at row {missing[0]})",
            field=spec.target,
        )
    if not spec.task.is_classification:
        return _numeric(spec.target, values).astype(np.float64)
    ints = _as_ints(values)
    if ints is not None:
        return ints
    return np.asarray([str(v) for v in values], dtype=object)


def _as_ints(values: list) -> np.ndarray | None:
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if isinstance(v, bool):
            out[i] = int(v)
            continue
        try:
            number = float(v)
        except (TypeError, ValueError):
            return None
        if not number.is_integer():
            return None
        out[i] = int(number)
    return out


_PARAM_IN_ERROR = re.compile(r"The '(\w+)' parameter of \w+ must be")


# -- training ----------------------------------------------------------------------------------
@dataclass
class TrainResult:
    pipeline: Pipeline
    metrics: dict[str, float]
    X_holdout: pd.DataFrame
    y_holdout: np.ndarray
    classes: list | None
    params: dict
    rows_train: int
    rows_holdout: int
    holdout_predictions: list = field(default_factory=list)


def make_estimator(spec: ModelSpec) -> BaseEstimator:
    kind = spec.estimator.kind
    cls = ESTIMATORS[kind]
    accepted = set(cls().get_params())
    params = {**_DEFAULTS.get(kind, {}), **spec.estimator.params}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise TrainingError(
            f"estimator.params.{unknown[0]}: not a parameter of {kind} "
            f"({cls.__name__}); accepted: {sorted(accepted)}",
            field=f"estimator.params.{unknown[0]}",
        )
    if "random_state" in accepted and "random_state" not in spec.estimator.params:
        params["random_state"] = spec.seed
    return cls(**params)


def build_pipeline(spec: ModelSpec) -> Pipeline:
    transformers = []
    numeric = [f.name for f in spec.numeric]
    categorical = [f.name for f in spec.categorical]
    if numeric:
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
        if spec.estimator.kind in SCALED:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        # Dense output: hist_gradient_boosting refuses sparse input, and the ONNX graph is dense
        # anyway. Missing values already arrive as MISSING_CATEGORY (a category of its own).
        transformers.append(
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64),
                categorical,
            )
        )
    pre = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("preprocess", pre), ("model", make_estimator(spec))])


def train(spec: ModelSpec, df: pd.DataFrame) -> TrainResult:
    """Fit the spec's pipeline on a stratified split and score it on the holdout. Deterministic."""
    missing = [c for c in [*spec.feature_names, spec.target] if c not in df.columns]
    if missing:
        raise TrainingError(
            f"column {missing[0]!r} is missing from the training frame", field=missing[0]
        )
    X = df[spec.feature_names].reset_index(drop=True)
    y = np.asarray(df[spec.target])
    classification = spec.task.is_classification
    if classification:
        labels, counts = np.unique(y, return_counts=True)
        if len(labels) < 2:
            raise TrainingError(
                f"target {spec.target!r} has a single class {labels.tolist()}", field=spec.target
            )
        if spec.task.value == "binary_classification" and len(labels) != 2:
            raise TrainingError(
                f"binary_classification needs exactly 2 classes in {spec.target!r}, found "
                f"{len(labels)}: {_natives(labels)[:10]}",
                field=spec.target,
            )
    try:
        X_train, X_hold, y_train, y_hold = train_test_split(
            X,
            y,
            test_size=spec.test_size,
            random_state=spec.seed,
            stratify=y if classification else None,
        )
    except ValueError as exc:
        raise TrainingError(f"cannot split {len(X)} rows for a holdout: {exc}") from None
    X_hold = X_hold.reset_index(drop=True)

    pipeline = build_pipeline(spec)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            pipeline.fit(X_train, y_train)
    except (ValueError, TypeError) as exc:
        # sklearn's InvalidParameterError (a ValueError) names the parameter:
        # "The 'n_estimators' parameter of RandomForestClassifier must be ...". Other
        # ValueErrors are about the data (e.g. a class too small for the model).
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        param = _PARAM_IN_ERROR.search(message)
        raise TrainingError(
            f"training {spec.estimator.kind} failed: "
            + (f"estimator.params.{param.group(1)}: " if param else "")
            + message,
            field=f"estimator.params.{param.group(1)}" if param else None,
        ) from None

    predictions = pipeline.predict(X_hold)
    classes = _natives(pipeline.classes_) if classification else None
    proba = pipeline.predict_proba(X_hold) if classification else None
    # The same metrics module scores champions on this holdout and live traffic from labels.
    scores = compute_metrics(spec.task.value, y_hold, predictions, proba, classes)
    return TrainResult(
        pipeline=pipeline,
        metrics=scores,
        X_holdout=X_hold,
        y_holdout=np.asarray(y_hold),
        classes=classes,
        params=_jsonable_params(pipeline.named_steps["model"]),
        rows_train=len(X_train),
        rows_holdout=len(X_hold),
        holdout_predictions=_natives(predictions),
    )


def _natives(values) -> list:
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values).tolist()]


def _jsonable_params(estimator: BaseEstimator) -> dict:
    out: dict[str, Any] = {}
    for key, value in sorted(estimator.get_params(deep=False).items()):
        if isinstance(value, np.generic):
            value = value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(
            isinstance(v, (bool, int, float, str)) for v in value
        ):
            out[key] = list(value)
        else:
            out[key] = repr(value)
    return out
