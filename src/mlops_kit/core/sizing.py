"""How big a training job is, and where it should run. Pure: numbers in, numbers out.

Validation sizes every dataset that passes (rows, bytes, an estimated peak training memory)
and records it in the report and the training job; the train-queue consumer routes on it:
a small job trains in the consumer (the train function), a large one on the batch engine
(AWS Batch on Fargate; a separate process locally).

The estimate models what `train_job` holds at its peak, calibrated against the trainer's
measured peak RSS (bench/batch_training.py: estimate vs measured for a grid of shapes, sizes
and estimators, and the least-squares fit these constants come from):

- the interpreter with numpy, pandas, pyarrow, scikit-learn, skl2onnx and onnxruntime;
- per numeric cell (the target counts as one): the CSV string from Arrow, its Python object,
  the float64 frame column and its train/holdout copies and imputed copy;
- per categorical cell: the frame's pointers and their copies (the strings are shared);
- per design-matrix cell (numeric + one-hot columns): the dense float64 transform and the
  estimator's own copy;
- per tree node (an upper bound): sklearn's node and value arrays and the ONNX conversion,
  which dominate deep random forests.

Calibrated on CSV uploads; Parquet (typed columns) is not measured separately.

It lives in core (not core/training) because validation, a lower layer, computes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from mlops_kit.core.stats import OTHER_CATEGORY

if TYPE_CHECKING:  # annotations only: bootstrap imports RouteLimits without the spec
    from mlops_kit.core.spec import ModelSpec

Engine = Literal["function", "batch"]
MB = 1 << 20

# -- calibration (bench/batch_training.py --fit; figures in bench/README.md) -----------------
BASE_MB = 300.0  # the trainer process before the data (measured: 295 MB at 3,000 rows)
NUMERIC_CELL = 80.0  # bytes per numeric cell (fit: 77)
CATEGORICAL_CELL = 24.0  # bytes per categorical cell (three pointer arrays; fit: ~0)
DENSE_CELL = 14.0  # bytes per design-matrix cell (fit: 12)
NODE_BYTES = 400.0  # bytes per tree node, fitted trees + their ONNX conversion
SAFETY = 1.15  # the estimate errs on the high side: a job sent to the function must fit
UNKNOWN_CATEGORIES = 100  # one-hot width assumed for an open categorical with many values


@dataclass(frozen=True)
class JobSize:
    """What validation records about a dataset that passed: the job's size."""

    rows: int
    bytes: int
    columns: int
    design_width: int  # numeric + one-hot columns the estimator sees
    tree_nodes: int  # upper bound over the fitted ensemble (0 for linear models)
    estimated_peak_mb: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> JobSize | None:
        if not data:
            return None
        try:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})
        except (KeyError, TypeError):
            return None


def one_hot_width(spec: ModelSpec, distinct: Mapping[str, int] | None = None) -> int:
    """Columns the one-hot encoder makes: the spec's categories (+1 for missing), else what
    validation saw (`distinct`), else a conservative guess."""
    width = 0
    for f in spec.categorical:
        if f.categories is not None:
            w = len(f.categories) + (1 if f.nullable else 0)
        else:
            w = max(1, int((distinct or {}).get(f.name, UNKNOWN_CATEGORIES)))
        width += min(w, f.max_categories) if f.max_categories else w  # the tail is one bucket
    return width


def _number(params: Mapping[str, Any], name: str, default: float | None) -> float | None:
    """A numeric estimator param, or the default: a bad value is the trainer's to report
    (validation sizes the job; it never fails on params)."""
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def tree_nodes(spec: ModelSpec, train_rows: int, n_classes: int = 2) -> int:
    """An upper bound on the nodes of the fitted ensemble (memory of the trees and of their
    ONNX conversion). Deep forests grow about one leaf per distinct bootstrap row."""
    p = spec.estimator.params
    kind = spec.estimator.kind
    if kind in ("random_forest", "random_forest_regressor"):
        trees = _number(p, "n_estimators", 100) or 100
        leaf = _number(p, "min_samples_leaf", 1) or 1
        leaf = max(1.0, leaf * train_rows if leaf < 1 else leaf)  # a float: a share of rows
        fraction = 0.632 if p.get("bootstrap", True) is not False else 1.0  # distinct rows
        by_rows = 2 * fraction * train_rows / leaf
        max_leaves = _number(p, "max_leaf_nodes", None)
        if max_leaves:
            by_rows = min(by_rows, 2 * max_leaves)
        depth = _number(p, "max_depth", None)
        by_depth = 2 ** (int(depth) + 1) if depth is not None and depth < 40 else math.inf
        return int(trees * min(by_rows, by_depth))
    if kind in ("gradient_boosting", "gradient_boosting_regressor"):
        per_stage = n_classes if kind == "gradient_boosting" and n_classes > 2 else 1
        depth = int(_number(p, "max_depth", 3) or 3)
        return int((_number(p, "n_estimators", 100) or 100) * per_stage * 2 ** (min(depth, 30) + 1))
    if kind == "hist_gradient_boosting":
        per_stage = n_classes if n_classes > 2 else 1
        leaves = _number(p, "max_leaf_nodes", 31) or 31
        return int((_number(p, "max_iter", 100) or 100) * per_stage * 2 * leaves)
    return 0


def estimate(spec: ModelSpec, *, rows: int, nbytes: int,
             distinct: Mapping[str, int] | None = None, n_classes: int = 2) -> JobSize:
    """The job's size and its estimated peak training memory (MB)."""
    # booleans and dates are numbers to the model; a text column is a string in the frame and
    # up to max_features dense TF-IDF columns in the design matrix
    n_num = len(spec.numeric) + len(spec.booleans) + len(spec.datetimes)
    n_cat = len(spec.categorical) + len(spec.texts)
    width = n_num + one_hot_width(spec, distinct) + sum(f.max_features for f in spec.texts) \
        + sum(sum(2 if p.endswith("_cycle") else 1 for p in f.parts) - 1 for f in spec.datetimes)
    nodes = tree_nodes(spec, int(rows * (1 - spec.test_size)), n_classes)
    per_row = NUMERIC_CELL * (n_num + 1) + CATEGORICAL_CELL * n_cat + DENSE_CELL * width
    peak = BASE_MB + (rows * per_row + NODE_BYTES * nodes) / MB
    return JobSize(rows=rows, bytes=nbytes, columns=n_num + n_cat + 1, design_width=width,
                   tree_nodes=nodes, estimated_peak_mb=round(peak * SAFETY, 1))


def estimate_from_profile(spec: ModelSpec, *, rows: int, nbytes: int,
                          profile: Mapping[str, Any]) -> JobSize:
    """`estimate` with the category counts and classes validation profiled."""
    feats = profile.get("features") or {}
    distinct = {}
    for f in spec.categorical:
        freqs = (feats.get(f.name) or {}).get("freqs") or {}
        # more values than the profile keeps: the width is unknown, assume many
        distinct[f.name] = UNKNOWN_CATEGORIES if OTHER_CATEGORY in freqs else len(freqs) + 1
    target = (profile.get("target") or {}).get("freqs") or {}
    n_classes = len(target) if spec.task.is_classification and isinstance(target, dict) else 2
    return estimate(spec, rows=rows, nbytes=nbytes, distinct=distinct,
                    n_classes=max(2, n_classes))


# -- routing -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RouteLimits:
    """When a job leaves the function. Defaults match the topology's train function (3008 MB,
    15 minutes); a deployment sets them through settings (MLOPSKIT_TRAIN_*)."""

    function_memory_mb: int = 3008
    memory_fraction: float = 0.7  # an estimated peak above this share of it goes to batch
    max_function_rows: int = 1_000_000  # more rows than this goes to batch (the 15 min limit)
    batch_available: bool = False  # a batch engine is configured


@dataclass(frozen=True)
class Route:
    engine: Engine
    reason: str


def choose_engine(requested: str, size: JobSize | None, limits: RouteLimits) -> Route:
    """`training.engine` from the spec (auto | function | batch) + the job's size -> where it
    trains. `batch` without a configured engine is an error the caller reports."""
    if requested == "function":
        return Route("function", "the spec asks for training.engine: function")
    if requested == "batch":
        return Route("batch", "the spec asks for training.engine: batch")
    if size is None:
        return Route("function", "the job carries no size (validated before sizing existed)")
    budget = limits.function_memory_mb * limits.memory_fraction
    if size.estimated_peak_mb > budget:
        why = (f"estimated peak {size.estimated_peak_mb:.0f} MB is over {budget:.0f} MB "
               f"({limits.memory_fraction:.0%} of the function's {limits.function_memory_mb} MB)")
    elif size.rows > limits.max_function_rows:
        why = f"{size.rows} rows is over the function's limit of {limits.max_function_rows}"
    else:
        return Route("function", f"{size.rows} rows, estimated peak "
                                 f"{size.estimated_peak_mb:.0f} MB fit the function")
    if not limits.batch_available:
        return Route("function", why + "; no batch engine is configured, training in the "
                                       "function anyway")
    return Route("batch", why)
