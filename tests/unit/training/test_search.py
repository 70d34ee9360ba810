"""The spec's `search` block: structure at parse time, parameters against scikit-learn at
spec-check time, and the deterministic expansion into trials."""

from __future__ import annotations

import pytest

from mlops_kit.core.spec import parse_spec
from mlops_kit.core.synthetic import CHURN_SPEC
from mlops_kit.core.training.search import candidate_hash, check_search, plan_search
from mlops_kit.errors import SpecError

LR = {"kind": "logistic_regression", "grid": {"C": [0.1, 1.0, 10.0]}}
RF = {"kind": "random_forest", "params": {"n_estimators": 20}, "grid": {"max_depth": [3, None]}}


def spec_with(search: dict, **extra):
    return parse_spec({**CHURN_SPEC, **extra, "search": search})


def test_a_spec_without_search_hashes_as_before_searches_existed():
    spec = parse_spec(CHURN_SPEC)
    assert "search" not in spec.canonical_json() and "serving" not in spec.canonical_json()
    # computed on main before the search block existed (commit 10db457), when every feature
    # was nullable by default: the same meaning spelled out today gives the same hash
    then = parse_spec({**CHURN_SPEC, "features": [{**f, "nullable": True}
                                                  for f in CHURN_SPEC["features"]]})
    assert then.spec_hash() == "439592830186bc63de46b8e30049331664abc232e01b8a77f52163cae01a589f"
    assert spec_with({"candidates": [LR]}).spec_hash() != spec.spec_hash()


@pytest.mark.parametrize(("search", "words"), [
    ({"candidates": [{"kind": "ridge"}]}, ["search.candidates.0.kind", "ridge"]),
    ({"candidates": [{"kind": "svm"}]}, ["candidates.0.kind"]),
    ({"candidates": [{"kind": "random_forest", "ranges": {"max_depth": {"low": 2, "high": 8}}}]},
     ["ranges need strategy: random"]),
    ({"candidates": [{"kind": "random_forest", "grid": {"max_depth": []}}]},
     ["grid.max_depth", "at least one"]),
    ({"candidates": [{"kind": "random_forest", "grid": {"max_depth": [3, 3]}}]}, ["distinct"]),
    ({"candidates": [{"kind": "random_forest", "params": {"max_depth": 3},
                      "grid": {"max_depth": [3, 4]}}]}, ["both params and grid"]),
    ({"strategy": "random", "candidates": [
        {"kind": "random_forest", "ranges": {"max_features": {"low": 0.5, "high": 0.1}}}]},
     ["low (0.5) must be < high"]),
    ({"candidates": [LR], "metric": "rmse"}, ["search.metric 'rmse'"]),
    ({"candidates": [LR], "cv": 1}, ["search.cv"]),
    ({"candidates": []}, ["search.candidates"]),
    ({"candidates": [LR], "budget": 3}, ["search.budget"]),
])
def test_structural_errors_name_the_field(search, words):
    with pytest.raises(SpecError) as err:
        spec_with(search)
    for w in words:
        assert w in err.value.message


@pytest.mark.parametrize(("candidate", "words"), [
    ({"kind": "random_forest", "grid": {"max_dept": [3, 4]}},
     ["search.candidates.0", "'max_dept' is not a parameter of random_forest"]),
    ({"kind": "random_forest", "params": {"n_estimators": -5}},
     ["search.candidates.0.params", "n_estimators"]),
    ({"kind": "random_forest", "grid": {"criterion": ["gini", "purity"]}},
     ["search.candidates.0.grid.criterion", "criterion"]),
    ({"kind": "hist_gradient_boosting",
      "ranges": {"learning_rate": {"low": -1.0, "high": 0.3}}},
     ["search.candidates.0.ranges.learning_rate"]),
])
def test_parameters_are_checked_against_sklearn_before_anything_trains(candidate, words):
    spec = spec_with({"strategy": "random", "candidates": [candidate]})
    with pytest.raises(SpecError) as err:
        check_search(spec)
    for w in words:
        assert w in err.value.message, err.value.message


def test_grid_expands_every_combination_with_the_spec_estimator_as_baseline():
    spec = spec_with({"candidates": [LR, RF]})
    plan = check_search(spec)
    kinds = [t["kind"] for t in plan.trials]
    assert kinds == ["gradient_boosting"] + ["logistic_regression"] * 3 + ["random_forest"] * 2
    assert plan.trials[0]["params"] == CHURN_SPEC["estimator"]["params"]
    assert {t["params"]["max_depth"] for t in plan.trials[4:]} == {3, None}
    assert all(t["params"]["n_estimators"] == 20 for t in plan.trials[4:])
    assert [t["index"] for t in plan.trials] == list(range(6)) and plan.space == 6
    assert len({t["hash"] for t in plan.trials}) == 6
    no_base = plan_search(spec_with({"candidates": [LR, RF], "include_estimator": False}))
    assert len(no_base.trials) == 5


def test_a_grid_bigger_than_the_budget_is_sampled_the_same_way_every_time():
    search = {"max_candidates": 5, "include_estimator": False, "candidates": [
        {"kind": "random_forest", "grid": {"max_depth": [2, 3, 4, 5], "min_samples_leaf": [1, 2, 4]}}]}
    a, b = plan_search(spec_with(search)), plan_search(spec_with(search))
    assert len(a.trials) == 5 and a.space == 12 and "12 distinct points" in a.notes[0]
    assert [t["hash"] for t in a.trials] == [t["hash"] for t in b.trials]
    other = plan_search(spec_with(search, seed=7))
    assert [t["hash"] for t in other.trials] != [t["hash"] for t in a.trials]


def test_duplicate_points_are_tried_once():
    same = {"kind": "logistic_regression", "params": {"C": 1.0}}
    plan = plan_search(spec_with({"include_estimator": False, "candidates": [same, same, LR]}))
    assert len(plan.trials) == 3  # C=1.0 once (the fixed one equals a grid point)


def test_random_search_samples_ranges_deterministically_within_bounds():
    search = {"strategy": "random", "max_candidates": 8, "include_estimator": False,
              "candidates": [{"kind": "hist_gradient_boosting", "grid": {"max_depth": [2, 3]},
                              "ranges": {"learning_rate": {"low": 0.01, "high": 0.3, "log": True},
                                         "max_iter": {"low": 20, "high": 60, "integer": True}}}]}
    a = plan_search(spec_with(search))
    assert len(a.trials) == 8 and a.space is None
    for t in a.trials:
        p = t["params"]
        assert 0.01 <= p["learning_rate"] <= 0.3 and isinstance(p["max_iter"], int)
        assert 20 <= p["max_iter"] <= 60 and p["max_depth"] in (2, 3)
        assert t["hash"] == candidate_hash(t["kind"], p)
    assert a.trials == plan_search(spec_with(search)).trials


def test_a_spec_check_without_search_is_a_no_op():
    assert check_search(parse_spec(CHURN_SPEC)) is None


def test_the_example_search_spec_is_valid():
    from pathlib import Path

    from mlops_kit.core.spec import load_spec_bytes

    path = Path(__file__).resolve().parents[3] / "examples" / "churn-search.yaml"
    spec = load_spec_bytes(path.read_bytes(), source=str(path))
    plan = check_search(spec)
    assert spec.search.strategy == "grid" and 1 < len(plan.trials) <= spec.search.max_candidates
