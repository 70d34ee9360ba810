"""Issue 26's `datetime` feature: ISO 8601 dates and timestamps (or a strptime `format`) become
days since 1970-01-01 UTC by one function (features.parse_days) in validation, training and
serving; parity-gated, with leap days, time zones, missing dates and a native Parquet
timestamp column."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_kit.core.features import coerce_datetime, parse_days
from mlops_kit.core.spec import parse_spec
from mlops_kit.errors import ValidationError
from mlops_kit.local.worker import put_object, run_once
from tests.support import apply_spec, make_backend

SPEC = {"name": "dates", "task": "binary_classification", "target": "y",
        "features": [{"name": "x", "type": "numeric"},
                     {"name": "signup", "type": "datetime", "nullable": True}],
        "estimator": {"kind": "logistic_regression"}, "validation": {"min_rows": 50}}


def test_parse_days_leap_days_time_zones_and_formats():
    assert parse_days("1970-01-02") == 1.0
    assert parse_days("2024-02-29") - parse_days("2024-02-28") == 1.0
    assert parse_days("2023-02-29") is None  # no such day
    assert parse_days("2024-03-01T12:00:00+02:00") == pytest.approx(parse_days("2024-03-01") + 0.4166666)
    assert parse_days("2024-03-01T10:00:00Z") == parse_days("2024-03-01T10:00:00")  # naive = UTC
    assert parse_days("01/03/2024", "%d/%m/%Y") == parse_days("2024-03-01")
    assert parse_days("yesterday") is None


def test_coerce_datetime_names_the_field_and_the_expected_form():
    f = parse_spec(SPEC).features[1]
    assert np.isnan(coerce_datetime("signup", None, f, 0))
    with pytest.raises(ValidationError, match=r"instances\[0\]\.signup: 'soon' is not an ISO 8601"):
        coerce_datetime("signup", "soon", f, 0)


def _frame(n=700, seed=0):
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 2000, n)
    x = rng.normal(size=n)
    y = (x + (days > 1000) * 1.2 + rng.normal(0, 0.5, n) > 0.6).astype(int)
    stamps = (np.datetime64("2018-01-01T00:00") + days.astype("timedelta64[D]")
              + rng.integers(0, 1440, n).astype("timedelta64[m]"))
    return x, stamps, y


def test_datetime_lifecycle_csv_parity_and_serving(tmp_path):
    x, stamps, y = _frame()
    lines = ["x,signup,y"]
    for i, (a, s, t) in enumerate(zip(x, stamps, y, strict=True)):
        text = "" if i % 17 == 0 else (str(s) + ("Z" if i % 3 == 0 else ""))
        lines.append(f"{a:.4f},{text},{t}")
    b = make_backend(tmp_path / "ws")
    apply_spec(b, SPEC)
    put_object(b, "datasets/dates/one.csv", ("\n".join(lines) + "\n").encode())
    out = run_once(b)[-1]
    assert out["status"] == "registered", out
    assert b.ctx.registry.get_version("dates", out["version"])["parity"]["passed"]
    svc = b.service(capture=False)
    same = [svc.predict("dates", [{"x": 0.1, "signup": s}])["probabilities"]
            for s in ["2024-02-29T00:00:00Z", "2024-02-29", "2024-02-29T01:00:00+01:00"]]
    assert same[0] == same[1] == same[2]
    assert svc.predict("dates", [{"x": 0.1, "signup": None}])["predictions"]
    with pytest.raises(ValidationError, match="signup: '2024-13-01' is not"):
        svc.predict("dates", [{"x": 0.1, "signup": "2024-13-01"}])


def test_datetime_from_a_native_parquet_timestamp_column(tmp_path):
    x, stamps, y = _frame(seed=1)
    table = pa.table({"x": x, "signup": pa.array(stamps.astype("datetime64[us]")), "y": y})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    b = make_backend(tmp_path / "ws")
    apply_spec(b, SPEC)
    put_object(b, "datasets/dates/one.parquet", buf.getvalue())
    out = run_once(b)[-1]
    assert out["status"] == "registered", out


def test_a_value_that_is_no_date_quarantines_the_dataset(tmp_path):
    x, stamps, y = _frame(seed=2)
    lines = ["x,signup,y"] + [f"{a:.3f},{'soon' if i == 5 else s},{t}"
                              for i, (a, s, t) in enumerate(zip(x, stamps, y, strict=True))]
    b = make_backend(tmp_path / "ws")
    apply_spec(b, SPEC)
    put_object(b, "datasets/dates/bad.csv", ("\n".join(lines) + "\n").encode())
    assert run_once(b)[0]["status"] == "quarantined"


def test_sizing_counts_the_new_types():
    from mlops_kit.core.sizing import estimate

    base = parse_spec(SPEC)
    wide = parse_spec({**SPEC, "features": [*SPEC["features"],
                                            {"name": "c", "type": "text", "max_features": 300},
                                            {"name": "b", "type": "boolean"}]})
    a = estimate(base, rows=10_000, nbytes=1 << 20)
    b = estimate(wide, rows=10_000, nbytes=1 << 20)
    assert a.design_width == 1 + 7  # x, and days + 3 cycles x (sin, cos)
    assert b.design_width == a.design_width + 1 + 300
    assert b.estimated_peak_mb > a.estimated_peak_mb


def test_date_cycles_parts_and_values():
    from mlops_kit.core.training.date_cycles import DateCycles

    t = DateCycles(("days", "week_cycle", "day_cycle")).fit([[0.0]])
    out = t.transform([[0.0], [3.5], [7.25]])
    assert out.shape == (3, 5) and out.dtype == np.float32
    assert out[0].tolist() == pytest.approx([0, 0, 1, 0, 1], abs=1e-6)
    assert out[1, 1:3].tolist() == pytest.approx([np.sin(np.pi), np.cos(np.pi)], abs=1e-5)
    assert out[2, 3:5].tolist() == pytest.approx([1, 0], abs=1e-5)  # a quarter of a day


@pytest.mark.parametrize("kind", ["logistic_regression", "random_forest"])
def test_a_weekly_pattern_is_learned_through_week_cycle_and_passes_parity(tmp_path, kind):
    rng = np.random.default_rng(5)
    days = rng.integers(17000, 19000, 900)
    y = (np.isin((days + 3) % 7, [5, 6]) ^ (rng.random(900) < 0.05)).astype(int)  # weekends
    dates = (np.datetime64("1970-01-01") + days.astype("timedelta64[D]")).astype(str)
    lines = ["signup,y"] + [f"{d},{t}" for d, t in zip(dates, y, strict=True)]
    spec = {**SPEC, "features": [{"name": "signup", "type": "datetime",
                                  "parts": ["days", "week_cycle"]}],
            "estimator": {"kind": kind}}
    b = make_backend(tmp_path / "ws")
    apply_spec(b, spec)
    put_object(b, "datasets/dates/one.csv", ("\n".join(lines) + "\n").encode())
    out = run_once(b)[-1]
    assert out["status"] == "registered", out
    v = b.ctx.registry.get_version("dates", out["version"])
    assert v["parity"]["passed"] and v["metrics"]["roc_auc"] > 0.8
    svc = b.service(capture=False)
    sat, wed = (svc.predict("dates", [{"signup": d}])["probabilities"][0][1]
                for d in ("2024-03-02", "2024-03-06"))
    assert sat > 0.5 > wed
