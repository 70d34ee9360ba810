"""Job sizing (core/sizing.py) and the spec's training.engine: the estimate's shape, the
routing decision, and spec hashes that do not move for specs without `training`."""

from __future__ import annotations

import io

import pytest

from mlops_kit.core.sizing import (
    JobSize,
    RouteLimits,
    choose_engine,
    estimate,
    estimate_from_profile,
    one_hot_width,
    tree_nodes,
)
from mlops_kit.core.spec import parse_spec
from mlops_kit.core.synthetic import CHURN_SPEC, churn_csv
from mlops_kit.errors import SpecError

SPEC = parse_spec(CHURN_SPEC)


def with_estimator(kind, **params):
    return parse_spec({**CHURN_SPEC, "estimator": {"kind": kind, "params": params}})


def test_spec_hash_unchanged_for_specs_without_training():
    # run keys, and so versions, depend on the hash: the pre-search pin (the same meaning as
    # CHURN_SPEC when every feature was nullable) holds with the training block in the model
    then = parse_spec({**CHURN_SPEC, "features": [{**f, "nullable": True}
                                                  for f in CHURN_SPEC["features"]]})
    assert then.spec_hash() == "439592830186bc63de46b8e30049331664abc232e01b8a77f52163cae01a589f"
    assert '"training"' not in SPEC.canonical_json()


def test_where_a_model_trains_does_not_change_its_hash():
    forced = parse_spec({**CHURN_SPEC, "training": {"engine": "batch"}})
    assert forced.training.engine == "batch"
    assert forced.spec_hash() == SPEC.spec_hash()
    assert '"training":{"engine":"batch"}' in forced.canonical_json()


def test_bad_engine_names_the_field():
    with pytest.raises(SpecError) as exc:
        parse_spec({**CHURN_SPEC, "training": {"engine": "lambda"}})
    assert exc.value.field == "training.engine"


def test_one_hot_width_from_spec_categories_then_profile_then_guess():
    # plan (4) and region (4) are not nullable; payment (3) is: + a missing category
    assert [f.nullable for f in SPEC.categorical] == [False, False, True]
    assert one_hot_width(SPEC) == 4 + 4 + (3 + 1)
    open_spec = parse_spec({**CHURN_SPEC, "features": [
        {"name": "tenure_months", "type": "numeric"}, {"name": "plan", "type": "categorical"}]})
    assert one_hot_width(open_spec, {"plan": 7}) == 7
    assert one_hot_width(open_spec) == 100


def test_tree_nodes_bounded_by_depth_and_rows():
    deep = with_estimator("random_forest", n_estimators=10)
    shallow = with_estimator("random_forest", n_estimators=10, max_depth=4)
    assert tree_nodes(shallow, 1_000_000) == 10 * 2 ** 5
    assert tree_nodes(deep, 1_000_000) == int(10 * 2 * 0.632 * 1_000_000)
    assert tree_nodes(deep, 2_000_000) == 2 * tree_nodes(deep, 1_000_000)  # grows with rows
    assert tree_nodes(with_estimator("logistic_regression"), 10**6) == 0
    gb = with_estimator("gradient_boosting", n_estimators=60, max_depth=3)
    assert tree_nodes(gb, 10**9) == 60 * 16  # independent of rows


def test_bad_params_never_break_sizing():
    """Validation sizes the job; a bad param is the trainer's to report (a failed version)."""
    spec = with_estimator("random_forest", max_depth="deep", n_estimators=None,
                          min_samples_leaf=0.01)
    assert tree_nodes(spec, 1000) == int(100 * 2 * 0.632 * 1000 / 10)
    gb = with_estimator("gradient_boosting", n_estimators="many", max_depth=True)
    assert tree_nodes(gb, 1000) == 100 * 16


def test_estimate_grows_with_rows_width_and_trees():
    small = estimate(SPEC, rows=10_000, nbytes=470_000)
    big = estimate(SPEC, rows=2_000_000, nbytes=94_000_000)
    assert big.estimated_peak_mb > 10 * (small.estimated_peak_mb - estimate(
        SPEC, rows=0, nbytes=0).estimated_peak_mb)
    deep = estimate(with_estimator("random_forest"), rows=2_000_000, nbytes=94_000_000)
    assert deep.estimated_peak_mb > 5 * big.estimated_peak_mb  # 100 unbounded trees
    assert JobSize.from_dict(big.to_dict()) == big
    assert JobSize.from_dict(None) is None and JobSize.from_dict({"rows": 1}) is None


def test_estimate_from_a_validation_profile():
    from mlops_kit.core.validation.validator import validate_dataset

    data = churn_csv(3000, seed=5)
    result = validate_dataset(io.BytesIO(data), "csv", SPEC)
    size = estimate_from_profile(SPEC, rows=result.rows, nbytes=len(data),
                                 profile=result.profile)
    assert size.rows == 3000 and size.bytes == len(data)
    assert size.design_width == 4 + one_hot_width(SPEC)


LIMITS = RouteLimits(function_memory_mb=3000, memory_fraction=0.5, max_function_rows=1000,
                     batch_available=True)


def size(rows, peak):
    return JobSize(rows=rows, bytes=rows * 50, columns=8, design_width=15, tree_nodes=0,
                   estimated_peak_mb=peak)


@pytest.mark.parametrize(("requested", "job", "engine", "why"), [
    ("auto", size(500, 800), "function", "fit the function"),
    ("auto", size(500, 1600), "batch", "estimated peak 1600 MB is over 1500 MB"),
    ("auto", size(5000, 800), "batch", "5000 rows is over the function's limit of 1000"),
    ("auto", None, "function", "carries no size"),
    ("function", size(10**8, 10**6), "function", "training.engine: function"),
    ("batch", size(10, 1), "batch", "training.engine: batch"),
])
def test_choose_engine(requested, job, engine, why):
    route = choose_engine(requested, job, LIMITS)
    assert route.engine == engine and why in route.reason


def test_without_a_batch_engine_large_jobs_stay_in_the_function_and_say_so():
    from dataclasses import replace

    route = choose_engine("auto", size(5000, 800), replace(LIMITS, batch_available=False))
    assert route.engine == "function" and "no batch engine is configured" in route.reason
