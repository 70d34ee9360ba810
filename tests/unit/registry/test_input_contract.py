"""Issue 23 item 1: the compatibility rules of input contracts, each rule on its own."""

from __future__ import annotations

import pytest

from mlops_kit.core.registry.contract import compatibility, ignored_after, input_contract
from mlops_kit.core.spec import parse_spec
from mlops_kit.core.synthetic import CHURN_SPEC
from mlops_kit.errors import SpecError


def contract(features):
    return input_contract(parse_spec({**CHURN_SPEC, "features": features}))


NUM = {"name": "age", "type": "numeric", "min": 18, "max": 120}
CAT = {"name": "plan", "type": "categorical", "categories": ["a", "b"]}
A = contract([NUM, CAT])


def test_the_contract_records_names_types_nullable_defaults_and_categories():
    c = contract([NUM, {**CAT, "nullable": True, "default": "a"}])
    assert c["features"] == [
        {"name": "age", "type": "numeric", "nullable": False, "default": None, "min": 18.0,
         "max": 120.0},
        {"name": "plan", "type": "categorical", "nullable": True, "default": "a",
         "categories": ["a", "b"]}]
    assert c["unknown_fields"] == "reject"


@pytest.mark.parametrize(("features", "compatible", "named"), [
    ([NUM, CAT], True, []),
    ([NUM], True, []),  # dropped: ignored when sent
    ([NUM, CAT, {"name": "contract", "type": "categorical"}], False, ["contract"]),
    ([NUM, CAT, {"name": "contract", "type": "categorical", "nullable": True}], True, []),
    ([NUM, CAT, {"name": "contract", "type": "categorical", "default": "m"}], True, []),
    ([NUM, {"name": "plan", "type": "numeric"}], False, ["plan"]),  # type changed
    ([NUM, {**CAT, "categories": ["a"]}], False, ["plan"]),  # narrowed
    ([NUM, {**CAT, "categories": ["a", "b", "c"]}], True, []),  # widened
    ([{**NUM, "min": 21}, CAT], False, ["age"]),  # range narrowed
    ([{**NUM, "max": 200}, CAT], True, []),
])
def test_compatibility_for_the_old_versions_callers(features, compatible, named):
    out = compatibility(contract(features), A)
    assert out["compatible"] is compatible, out
    assert out["breaking_features"] == named
    assert all(any(n in why for n in named) for why in out["breaking"])


def test_nullable_to_required_and_any_to_listed_categories_are_breaking():
    old = contract([{**NUM, "nullable": True}, {"name": "plan", "type": "categorical"}])
    out = compatibility(contract([NUM, CAT]), old)
    assert out["breaking_features"] == ["age", "plan"]


def test_missing_contract_is_unknown_not_compatible():
    assert compatibility(None, A)["compatible"] is None


def test_dropped_features_stay_ignored_across_promotions():
    b = contract([NUM])
    assert ignored_after(b, A) == ["plan"]
    c = contract([{**NUM, "max": 130}, {"name": "x", "type": "numeric", "nullable": True}])
    assert ignored_after(c, b, ["plan"]) == ["plan"]


def test_a_default_must_satisfy_its_own_feature():
    with pytest.raises(SpecError, match="default"):
        contract([{**NUM, "default": 5}])
    with pytest.raises(SpecError, match="default"):
        contract([{**CAT, "default": "z"}])


def test_unset_default_and_5xx_threshold_keep_the_spec_hash():
    spec = parse_spec(CHURN_SPEC)
    assert "default" not in spec.canonical_json() and "max_5xx_rate" not in spec.canonical_json()
    with_default = parse_spec({**CHURN_SPEC, "features": [
        {**CHURN_SPEC["features"][0], "default": 12}, *CHURN_SPEC["features"][1:]]})
    assert with_default.spec_hash() != spec.spec_hash()
