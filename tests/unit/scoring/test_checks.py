"""The column-wise check of file rows (core/scoring/checks.py) against the per-row reference:
each row as one JSON-like record through the request path (features.records_to_inputs), the
values read as a file's are (missing tokens -> None, numbers parsed, else "expected a ...").
Same verdict per row, same rule, column and message, same feed for the accepted rows."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_kit.core.features import records_to_inputs
from mlops_kit.core.missing import missing_markers
from mlops_kit.core.scoring.checks import ColumnCheck
from mlops_kit.core.spec import CategoricalFeature, NumericFeature, parse_spec
from mlops_kit.core.synthetic import CHURN_SPEC
from mlops_kit.errors import ValidationError

pytestmark = pytest.mark.check

OTHER_SPEC = {**CHURN_SPEC, "features": [
    {"name": "tenure_months", "type": "numeric", "nullable": True},
    {"name": "age", "type": "numeric", "min": 18.5, "max": 1e39},
    {"name": "plan", "type": "categorical", "categories": ["basic", "pro", "NA"],
     "unknown": "other", "nullable": True},
    {"name": "region", "type": "categorical"},
    {"name": "flag", "type": "boolean", "nullable": True},
]}
SPECS = [parse_spec(CHURN_SPEC), parse_spec(OTHER_SPEC)]

NUMBERS = st.one_of(
    st.sampled_from(["", "NA", "nan", "None", "abc", "1_000", " 7 ", "inf", "-inf", "1e400",
                     "17", "18", "18.5", "240", "240.0001", "-0", "3.4e38", "1e39", "0x10"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10, 300).map(str))
TEXTS = st.one_of(
    st.sampled_from(["", "NA", "null", "basic", "pro", "premium", "enterprise", "north",
                     "south", "east", "west", "card", "bank", "x" * 257, "é" * 256, "Basic",
                     " basic", "true", "no", "1", "0", "2"]),
    st.text(max_size=6))


def _parse(text: str | None) -> float | None:
    """A file's number (datasets.values: blanks stripped, no '_', finite): None if none."""
    if text is None:
        return math.nan
    s = text.strip()
    if not s or "_" in s:
        return None
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def reference(spec, raw: dict[str, list[str | None]], n: int):
    """(accepted rows, {row: (column, message)}, feed rows) one record at a time."""
    accepted, refused, feeds = [], {}, {}
    for i in range(n):
        record, typed = {}, None
        for f in spec.features:
            v = raw[f.name][i]
            cats = f.categories if isinstance(f, CategoricalFeature) else None
            if v is not None and v in missing_markers(cats):
                v = None
            if isinstance(f, NumericFeature):
                number = _parse(v)
                if number is None and typed is None:
                    typed = (f.name, f"{f.name}: expected a number")
                record[f.name] = None if number is None or number != number else number
            else:
                record[f.name] = v
        if typed:
            refused[i] = typed
            continue
        try:
            feed = records_to_inputs(spec, [record])
        except ValidationError as exc:
            msg = str(exc.message).removeprefix("instances[0].")
            refused[i] = (exc.field, msg)
            continue
        accepted.append(i)
        feeds[i] = {k: v[0, 0] for k, v in feed.items()}
    return accepted, refused, feeds


def rows(spec):
    value = {f.name: NUMBERS if isinstance(f, NumericFeature) else TEXTS
             for f in spec.features}
    return st.lists(st.fixed_dictionaries({k: st.one_of(st.none(), v)
                                           for k, v in value.items()}), min_size=1,
                    max_size=40)


def _same(a, b) -> bool:
    if isinstance(a, (float, np.floating)) or isinstance(b, (float, np.floating)):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # 1e39 -> float32
@pytest.mark.parametrize("spec", SPECS, ids=["churn", "nullable-other-boolean"])
def test_the_column_check_agrees_with_the_request_path_row_by_row(spec):
    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(rows(spec))
    def check(records):
        n = len(records)
        raw = {f.name: [r[f.name] for r in records] for f in spec.features}
        # as the CSV reader gives them: binary, the empty field null
        cols = {k: pa.array([None if v in (None, "") else v.encode() for v in vals],
                            pa.binary()) for k, vals in raw.items()}
        got = ColumnCheck(spec).check(cols, n)
        ok, refused, feeds = reference(spec, raw, n)
        assert np.flatnonzero(got.accepted).tolist() == ok
        assert {i: (c, m) for i, c, m in got.rejects} == refused
        for i in ok:
            for name, want in feeds[i].items():
                have = got.feed[name][i, 0]
                assert _same(have, want), (i, name, have, want)
                assert got.feed[name].dtype == (np.float32 if isinstance(want, np.floating)
                                                else object)

    check()


def test_rows_of_a_parquet_file_typed_columns_are_checked_as_values():
    spec = SPECS[0]
    n = 4
    cols = {"tenure_months": pa.array([1, 2, 300, None], pa.int64()),
            "monthly_charges": pa.array([1.5, float("inf"), 3.0, 4.0]),
            "support_calls": pa.array([None, 1.0, 2.0, 3.0]),
            "age": pa.array([30, 40, 50, 60], pa.int32()),
            "plan": pa.array(["basic", "pro", "basic", "basic"]).dictionary_encode(),
            "region": pa.array(["north", "south", "east", "west"]),
            "payment": pa.array([None, "card", "card", "card"])}
    got = ColumnCheck(spec).check(cols, n)
    assert got.accepted.tolist() == [True, False, False, False]
    assert got.rejects == [
        (1, "monthly_charges", "monthly_charges: expected a number"),
        (2, "tenure_months", "tenure_months: 300 is above the maximum 240"),
        (3, "tenure_months", "tenure_months: is required (not nullable)")]
    assert got.feed["payment"][0, 0] == "__missing__"
    assert got.feed["plan"].dtype == object and got.feed["age"].dtype == np.float32
