"""The `search` block of a model spec: candidate estimators, their parameter grids or sampled
ranges, and the budget of one experiment run. Structure only (pydantic, no scikit-learn): the
serving path parses specs too. Parameter names and values are checked against scikit-learn by
`core.training.search.check_search` (at `spec apply` / `spec check` and when a run starts).

```yaml
search:
  strategy: grid            # grid: every combination | random: sampled draws
  metric: roc_auc           # default: promotion.metric
  cv: 3                     # folds on the training split; the winner has the best CV mean
  max_candidates: 20        # budget: trials per run (a bigger grid is sampled down, seeded)
  max_seconds: 600          # budget: no trial starts after this (optional)
  include_estimator: true   # the spec's `estimator` competes too, as the baseline
  candidates:
    - kind: logistic_regression
      grid: {C: [0.1, 1.0, 10.0]}
    - kind: random_forest
      params: {n_estimators: 100}          # fixed for every trial of this candidate
      grid: {max_depth: [4, 8, null]}
    - kind: hist_gradient_boosting         # ranges need strategy: random
      ranges: {learning_rate: {low: 0.01, high: 0.3, log: true}}
```
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["Candidate", "EstimatorKind", "Range", "Search"]

EstimatorKind = Literal[
    "logistic_regression",
    "random_forest",
    "gradient_boosting",
    "hist_gradient_boosting",
    "linear_regression",
    "ridge",
    "random_forest_regressor",
    "gradient_boosting_regressor",
]
MAX_TRIALS = 500
_SCALARS = (bool, int, float, str, type(None))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """A sampled parameter: uniform in [low, high], or log-uniform; `integer` rounds."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> Range:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("log ranges need low > 0")
        return self


class Candidate(_Strict):
    kind: EstimatorKind
    params: dict[str, Any] = Field(default_factory=dict, description="Fixed in every trial.")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="Values to try.")
    ranges: dict[str, Range] = Field(default_factory=dict, description="Sampled (random).")

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name, values in v.items():
            if not values:
                raise ValueError(f"grid.{name}: give at least one value")
            if not all(isinstance(x, _SCALARS) for x in values):
                raise ValueError(f"grid.{name}: values must be numbers, strings, booleans or null")
            if len({repr(x) for x in values}) != len(values):
                raise ValueError(f"grid.{name}: values must be distinct")
        return v

    @model_validator(mode="after")
    def _disjoint(self) -> Candidate:
        for a, b in (("params", "grid"), ("params", "ranges"), ("grid", "ranges")):
            both = sorted(set(getattr(self, a)) & set(getattr(self, b)))
            if both:
                raise ValueError(f"parameter {both[0]!r} is in both {a} and {b}: keep one")
        return self

    @property
    def grid_points(self) -> int:
        n = 1
        for values in self.grid.values():
            n *= len(values)
        return n


class Search(_Strict):
    strategy: Literal["grid", "random"] = "grid"
    candidates: list[Candidate] = Field(min_length=1, max_length=50)
    metric: str | None = Field(default=None, description="Default: promotion.metric.")
    cv: int = Field(default=3, ge=2, le=20)
    max_candidates: int = Field(default=20, ge=1, le=MAX_TRIALS)
    max_seconds: float | None = Field(default=None, gt=0)
    include_estimator: bool = Field(
        default=True, description="The spec's `estimator` (fixed params) competes as a baseline.")

    @model_validator(mode="after")
    def _strategy(self) -> Search:
        if self.strategy == "grid":
            for i, c in enumerate(self.candidates):
                if c.ranges:
                    raise ValueError(f"candidates.{i}.ranges need strategy: random "
                                     "(a grid lists values: use grid)")
        return self
