"""Reading a dataset and training a sklearn pipeline from a model spec. Pure: no cloud, no env.

The frame `read_frame` returns is already in the serving encoding (see core/features.py):
numeric values are rounded through float32 (the ONNX graph takes float32, so sklearn and ONNX
see identical numbers) and categorical missing values are the MISSING_CATEGORY string.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_kit.core.datasets import (
    class_labels,
    label_text,
    missing_markers,
    normalise,
    read_columns,
    shared_markers,
    to_boolean,
    to_float,
    to_text,
)
from mlops_kit.core.features import MISSING_CATEGORY, datetime_days, normalise_text
from mlops_kit.core.metrics import compute_metrics, positive_label, unambiguous_binary
from mlops_kit.core.spec import ModelSpec
from mlops_kit.core.stats import term_profile
from mlops_kit.core.training.date_cycles import DateCycles
from mlops_kit.core.training.estimators import ESTIMATORS, SCALED, make_estimator
from mlops_kit.errors import TrainingError, ValidationError

__all__ = ["ESTIMATORS", "TrainResult", "build_pipeline", "fit_pipeline", "make_estimator",
           "read_frame", "split_frame", "text_term_profiles", "train"]


# -- reading ---------------------------------------------------------------------------------
def read_frame(stream: BinaryIO, fmt: Literal["csv", "parquet"], spec: ModelSpec) -> pd.DataFrame:
    """Read a CSV/Parquet dataset into a typed frame with the spec's features and target only,
    through the one dataset reader validation uses (core/datasets.py): what validation passed
    reads here with the same values and the same meaning of missing."""
    wanted = [*spec.feature_names, spec.target]
    markers = {f.name: missing_markers(getattr(f, "categories", None)) for f in spec.features}
    markers[spec.target] = missing_markers()
    applied = shared_markers(markers.values()) if fmt == "csv" else []
    try:
        raw = read_columns(stream, fmt, wanted, null_values=applied or [""])
        col = {n: normalise(raw[n], markers[n], applied=applied) for n in wanted}
        out: dict[str, Any] = {}
        for nf in spec.numeric:
            out[nf.name] = _numeric(nf.name, col[nf.name])
        for cf in spec.categorical:
            out[cf.name] = pd.Series(_categories(cf.name, col[cf.name]), dtype=object)
        for bf in spec.booleans:
            out[bf.name] = _boolean(bf, col[bf.name])
        for tf in spec.texts:
            out[tf.name] = pd.Series(_texts(tf.name, col[tf.name]), dtype=object)
        for df_ in spec.datetimes:
            out[df_.name] = _datetimes(df_, col[df_.name])
        out[spec.target] = _target(spec, col[spec.target])
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ValidationError(
            f"cannot read {fmt} dataset: {str(exc).splitlines()[0]}", field="dataset"
        ) from None
    return pd.DataFrame(out, columns=wanted)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _numeric(name: str, arr: pa.Array) -> np.ndarray:
    vals, bad = to_float(arr)
    if bad is not None and bad.any():
        i = _first(bad)
        raise ValidationError(
            f"row {i + 1}: column {name!r}: expected a finite number, got "
            f"{str(arr[i].as_py())[:40]!r}", field=name)
    # Round through float32: the ONNX graph sees float32, so sklearn must see the same values.
    return vals.astype(np.float32).astype(np.float64)


def _boolean(f, arr: pa.Array) -> np.ndarray:
    vals, bad = to_boolean(arr, f.true_values, f.false_values)
    if bad is not None and bad.any():
        i = _first(bad)
        raise ValidationError(
            f"row {i + 1}: column {f.name!r}: {str(arr[i].as_py())[:40]!r} is not a boolean "
            f"(true: {f.true_values}, false: {f.false_values})", field=f.name)
    return vals


def _datetimes(f, arr: pa.Array) -> np.ndarray:
    text, bad = to_text(arr)
    days, not_date = datetime_days(text.to_pylist(), f.format)
    bad = not_date if bad is None else (bad if not_date is None else bad | not_date)
    if bad is not None and bad.any():
        i = _first(bad)
        raise ValidationError(f"row {i + 1}: column {f.name!r}: {str(arr[i].as_py())[:40]!r} "
                              "is not a date", field=f.name)
    return days.astype(np.float32).astype(np.float64)  # what the float32 graph sees


def _texts(name: str, arr: pa.Array) -> list[str]:
    text, bad = to_text(arr)
    if bad is not None and bad.any():
        raise ValidationError(f"row {_first(bad) + 1}: column {name!r}: expected text",
                              field=name)
    return ["" if v is None else normalise_text(v) for v in text.to_pylist()]


def _categories(name: str, arr: pa.Array) -> list[str]:
    text, bad = to_text(arr)
    if bad is not None and bad.any():
        raise ValidationError(f"row {_first(bad) + 1}: column {name!r}: expected text",
                              field=name)
    # the same str() serving applies (features.coerce_category); missing is its own category
    return [MISSING_CATEGORY if v is None else v for v in text.to_pylist()]


def _target(spec: ModelSpec, arr: pa.Array) -> np.ndarray:
    name = spec.target
    if not spec.task.is_classification:
        vals = _numeric(name, arr)
        missing = np.isnan(vals)
    else:
        text, bad = label_text(arr)
        if bad is not None and bad.any():
            raise ValidationError(f"row {_first(bad) + 1}: target {name!r}: not a class label",
                                  field=name)
        values = text.to_pylist()
        missing = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    if missing.any():
        raise ValidationError(
            f"target {name!r} is missing on {int(missing.sum())} rows (first at row "
            f"{_first(missing) + 1})", field=name)
    if not spec.task.is_classification:
        return vals
    labels = class_labels(values)
    if all(isinstance(v, int) for v in labels.values()):
        return np.asarray([labels[v] for v in values], dtype=np.int64)
    return np.asarray(values, dtype=object)


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
    # the spread (std) of each metric over CV folds of the training split: the noise the
    # promotion's `significance` compares a gain with (None: not computed)
    cv_std: dict[str, float] | None = None


def build_pipeline(spec: ModelSpec) -> Pipeline:
    transformers: list[tuple[str, Any, Any]] = []  # (name, transformer, column(s))
    # booleans arrive as 1.0 / 0.0 / NaN: imputed (and scaled) like numbers
    numeric = [f.name for f in spec.numeric] + [f.name for f in spec.booleans]
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
    for dt in spec.datetimes:  # days since the epoch -> the declared parts (date_cycles)
        dsteps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median")),
                                         ("parts", DateCycles(tuple(dt.parts)))]
        if spec.estimator.kind in SCALED:
            dsteps.append(("scale", StandardScaler()))
        transformers.append((f"datetime_{dt.name}", Pipeline(dsteps), [dt.name]))
    words = r"\S+"  # on normalised text: the words sklearn and the graph agree on
    for tf in spec.texts:
        # one 1-D string column each (a scalar column selector); lowercasing and tokens are
        # settled by features.normalise_text first (the graph's StringNormalizer needs a locale
        # the runtime may lack, its tokenizer keeps 1-character tokens sklearn drops, and its
        # \w is ASCII only: "école" is no word there), so the words are the runs of non-blanks
        transformers.append((f"text_{tf.name}", TfidfVectorizer(
            lowercase=False, token_pattern=words, max_features=tf.max_features,
            ngram_range=(1, tf.ngrams)), tf.name))
    pre = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("preprocess", pre), ("model", make_estimator(spec))])


def split_frame(spec: ModelSpec, df: pd.DataFrame):
    """The deterministic train/holdout split (stratified for classifiers) every fit uses."""
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
        if spec.task.value == "binary_classification":
            _check_positive(spec, _natives(labels))
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
    return X_train, X_hold.reset_index(drop=True), y_train, y_hold


def _check_positive(spec: ModelSpec, labels: list) -> None:
    """Never guess the positive class (validation says so first; this guards direct calls)."""
    if spec.positive_class is None and unambiguous_binary(labels):
        return
    try:
        positive_label(labels, spec.positive_class) if spec.positive_class is not None else None
    except ValueError as exc:
        raise TrainingError(str(exc), field="positive_class") from None
    if spec.positive_class is None:
        raise TrainingError(
            f"the labels of {spec.target!r} are {[str(x) for x in labels]}, not 0/1 or "
            "false/true: set positive_class in the spec", field="positive_class")
def category_levels(spec: ModelSpec, X: pd.DataFrame) -> list[list[str]] | None:
    """The one-hot levels per categorical feature when a spec pools a tail (max_categories,
    min_frequency, unknown: other); None: every level seen (OneHotEncoder's 'auto').

    A level left out encodes as all zeros (handle_unknown='ignore'), in sklearn and in the
    ONNX graph alike: that is the `other` bucket (skl2onnx cannot convert OneHotEncoder's own
    infrequent categories), and serving's OTHER_CATEGORY lands there too."""
    feats = spec.categorical
    if not any(f.max_categories or f.min_frequency or f.unknown == "other" for f in feats):
        return None
    out = []
    for f in feats:
        counts = X[f.name].value_counts()
        if f.unknown == "other" and f.categories is not None:
            keep = [c for c in counts.index if c in set(f.categories) or c == MISSING_CATEGORY]
            counts = counts[keep]
        if f.min_frequency:
            floor = f.min_frequency if f.min_frequency >= 1 else f.min_frequency * len(X)
            counts = counts[counts >= floor]
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        if f.max_categories:
            ranked = ranked[: f.max_categories - 1]  # one level is the other bucket
        levels = sorted(str(k) for k, _ in ranked)
        out.append(levels or [MISSING_CATEGORY])
    return out


def fit_pipeline(spec: ModelSpec, X: pd.DataFrame, y: np.ndarray) -> Pipeline:
    """Build and fit the spec's pipeline; a fit error becomes a TrainingError naming the param."""
    pipeline = build_pipeline(spec)
    levels = category_levels(spec, X)
    if levels is not None:
        pipeline.set_params(preprocess__categorical__categories=levels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            pipeline.fit(X, y)
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
    return pipeline


def cv_spread(spec: ModelSpec, X: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    """Each metric's standard deviation over promotion.cv_folds folds of the training split."""
    from sklearn.model_selection import KFold, StratifiedKFold

    y = np.asarray(y)
    classification = spec.task.is_classification
    splitter = (StratifiedKFold if classification else KFold)(
        spec.promotion.cv_folds, shuffle=True, random_state=spec.seed)
    per_fold = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for train_idx, test_idx in splitter.split(X, y):
            model = fit_pipeline(spec, X.iloc[train_idx], y[train_idx])
            Xt = X.iloc[test_idx]
            per_fold.append(compute_metrics(
                spec.task.value, y[test_idx], model.predict(Xt),
                model.predict_proba(Xt) if classification else None,
                _natives(model.classes_) if classification else None, spec.positive_class))
    names = set.intersection(*(set(m) for m in per_fold))
    return {n: float(np.std([m[n] for m in per_fold])) for n in sorted(names)}


def train(spec: ModelSpec, df: pd.DataFrame) -> TrainResult:
    """Fit the spec's pipeline on a stratified split and score it on the holdout. Deterministic.
    With promotion.significance, also the metrics' spread over CV folds."""
    X_train, X_hold, y_train, y_hold = split_frame(spec, df)
    classification = spec.task.is_classification
    pipeline = fit_pipeline(spec, X_train, y_train)

    predictions = pipeline.predict(X_hold)
    classes = _natives(pipeline.classes_) if classification else None
    proba = pipeline.predict_proba(X_hold) if classification else None
    # The same metrics module scores champions on this holdout and live traffic from labels.
    scores = compute_metrics(spec.task.value, y_hold, predictions, proba, classes,
                             spec.positive_class)
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
        cv_std=(cv_spread(spec, X_train, y_train)
                if spec.promotion.significance is not None else None),
    )


def text_term_profiles(spec: ModelSpec, result: TrainResult) -> dict[str, dict]:
    """Per text feature, the reference of its words for monitoring (stats.term_profile): the
    fitted TF-IDF's single words, and their shares and the out-of-vocabulary rate on the
    holdout, which the model never saw: what new data from the training's population looks
    like (on the training split the vocabulary's own words would flatter it)."""
    if not spec.texts:
        return {}
    pre = result.pipeline.named_steps["preprocess"]
    out = {}
    for tf in spec.texts:
        vectorizer = pre.named_transformers_[f"text_{tf.name}"]
        words = [t for t in vectorizer.vocabulary_ if " " not in t]  # n-grams are not words
        docs = [str(v).split() for v in result.X_holdout[tf.name].tolist()]  # normalised
        out[tf.name] = term_profile(words, docs)
    return out


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
