"""The per-spec warm-path validator is only ever faster, never laxer: whatever records it
accepts, the exact path (features.records_to_inputs) accepts too and encodes identically."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_kit.core.features import records_to_inputs
from mlops_kit.core.serving.validators import RecordValidator
from mlops_kit.core.spec import parse_spec
from mlops_kit.core.synthetic import CHURN_SPEC
from mlops_kit.errors import ValidationError
from tests.support import examples, feature_records

SPEC = parse_spec({**CHURN_SPEC, "features": [
    *CHURN_SPEC["features"][:2],
    {**CHURN_SPEC["features"][2], "nullable": True},
    {**CHURN_SPEC["features"][3], "nullable": False},
    {**CHURN_SPEC["features"][4], "nullable": False},
    {"name": "region", "type": "categorical", "nullable": True},  # any category
    CHURN_SPEC["features"][6],
]})
NAMES = SPEC.feature_names
GOOD = feature_records(1)[0]
values = (st.none() | st.booleans() | st.integers(-(10**40), 10**40)
          | st.sampled_from([2**53 + 1, 10**400, 3.3e38, -3.5e38, 240, 240.0000001, 18, 17.99])
          | st.floats(allow_nan=True, allow_infinity=True)
          | st.text(max_size=5) | st.sampled_from(["basic", "north", "card", "", "x" * 257, "12"])
          | st.lists(st.integers(), max_size=2))
records = st.builds(lambda patch, drop, extra: {
    **{k: v for k, v in {**GOOD, **patch}.items() if k not in drop}, **extra},
    st.dictionaries(st.sampled_from(NAMES), values, max_size=3),
    st.sets(st.sampled_from(NAMES), max_size=1),
    st.dictionaries(st.sampled_from(["extra", "Age"]), values, max_size=1))


@settings(max_examples=examples(600), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=7))
def test_fast_feed_equals_the_exact_path_or_declines(recs):
    fast = RecordValidator(SPEC).feed(recs)
    if fast is None:
        return
    exact = records_to_inputs(SPEC, recs)  # must not raise: the fast path accepted
    assert list(fast) == list(exact) or set(fast) == set(exact)
    for name in exact:
        a, b = fast[name], exact[name]
        assert a.dtype == b.dtype and a.shape == b.shape and a.flags["C_CONTIGUOUS"], name
        if a.dtype == object:
            assert a.tolist() == b.tolist(), name
        else:
            assert np.array_equal(a, b, equal_nan=True), name


def test_fast_feed_takes_the_common_request_and_declines_doubts():
    v = RecordValidator(SPEC)
    assert v.feed([GOOD]) is not None and v.feed(feature_records(5)) is not None
    for bad in ({**GOOD, "age": True}, {**GOOD, "age": "40"}, {**GOOD, "extra": 1},
                {k: x for k, x in GOOD.items() if k != "payment"}, {**GOOD, "plan": "gold"},
                {**GOOD, "age": float("nan")}, {**GOOD, "age": None}):
        assert v.feed([GOOD, bad]) is None
    with pytest.raises(ValidationError) as err:  # the exact path names the field
        records_to_inputs(SPEC, [{**GOOD, "age": None}])
    assert err.value.field == "age"
