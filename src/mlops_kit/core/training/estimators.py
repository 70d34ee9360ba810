"""The estimators a spec may name, and the check of their params.

`check_params` is the door: `spec check` / `spec apply` call it, and training builds every
estimator through it, so an unknown or invalid `estimator.params` value is refused with its name
before any data is read (never retried: a SpecError is final).
"""

from __future__ import annotations

import re
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from mlops_kit.core.spec import ModelSpec
from mlops_kit.errors import SpecError

__all__ = ["ESTIMATORS", "SCALED", "check_params", "make_estimator"]

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
_PARAM_IN_ERROR = re.compile(r"The '(\w+)' parameter of \w+ must be")


def make_estimator(spec: ModelSpec) -> BaseEstimator:
    """The spec's estimator with its params, checked (SpecError naming the param)."""
    kind = spec.estimator.kind
    cls = ESTIMATORS[kind]
    accepted = set(cls().get_params())
    params = {**_DEFAULTS.get(kind, {}), **spec.estimator.params}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise SpecError(
            f"estimator.params.{unknown[0]}: not a parameter of {kind} "
            f"({cls.__name__}); accepted: {sorted(accepted)}",
            field=f"estimator.params.{unknown[0]}",
        )
    if "random_state" in accepted and "random_state" not in spec.estimator.params:
        params["random_state"] = spec.seed
    estimator = cls(**params)
    # sklearn checks each param against its declared constraints only at fit time; the same
    # check now names the param before a version is reserved or a row is read.
    validate = getattr(estimator, "_validate_params", None)
    if validate is not None:
        try:
            validate()
        except (ValueError, TypeError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            param = _PARAM_IN_ERROR.search(message)
            name = param.group(1) if param else None
            raise SpecError(
                (f"estimator.params.{name}: " if name else "estimator.params: ") + message,
                field=f"estimator.params.{name}" if name else "estimator.params",
            ) from None
    return estimator


def check_params(spec: ModelSpec) -> None:
    """Raise SpecError naming the first unknown or invalid `estimator.params` entry."""
    make_estimator(spec)
