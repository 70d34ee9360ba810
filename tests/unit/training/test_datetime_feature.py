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


# -- integer calendar parts ----------------------------------------------------------------
def test_integer_parts_are_calendar_integers():
    from mlops_kit.core.training.date_cycles import DateCycles

    t = DateCycles(("year", "month", "weekday", "hour")).fit([[0.0]])
    days = [[parse_days(s)] for s in ("2024-02-29T13:00:00Z", "2024-03-01T00:30:00+01:00",
                                      "1969-12-31T23:00:00", "2000-12-31T12:04:00Z")]
    out = t.transform(days)
    assert out.dtype == np.float32 and out.shape == (4, 4)
    assert out.tolist() == [[2024, 2, 3, 13],  # a leap day, a Thursday; 13:00 survives float32
                            [2024, 2, 3, 23],  # +01:00: still Feb 29 in UTC
                            [1969, 12, 2, 23],  # before the epoch
                            [2000, 12, 6, 12]]  # 12:04 -> 12:05 (5-minute rounding) -> hour 12
    assert t.width() == 4


def test_integer_parts_onnx_equals_sklearn_on_many_instants():
    """The graph's calendar arithmetic (float64, step for step) gives the same integers as
    features.date_fields on 100,000 random float32 day counts from 1900 to 2100, including
    exact hours and midnights (where a floor could flip)."""
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    from mlops_kit.core.training.date_cycles import DateCycles, register
    from mlops_kit.core.training.export import TARGET_OPSET

    register()
    rng = np.random.default_rng(11)
    span = 200 * 365.2425
    x = np.concatenate([rng.uniform(-25567, -25567 + span, 50_000),  # any instant
                        np.round(rng.uniform(-25567, -25567 + span, 50_000) * 24) / 24])  # hours
    x = x.astype(np.float32).reshape(-1, 1)
    t = DateCycles(("days", "year", "month", "weekday", "hour", "year_cycle")).fit(x)
    onx = convert_sklearn(t, initial_types=[("d", FloatTensorType([None, 1]))],
                          target_opset=TARGET_OPSET)
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    a, b = t.transform(x), sess.run(None, {"d": x})[0]
    assert np.array_equal(a[:, :5], b[:, :5])  # days and the integer parts: bit for bit
    assert np.allclose(a[:, 5:], b[:, 5:], atol=1e-5)
    assert set(np.unique(a[:, 4]).tolist()) == set(range(24))


def test_an_hourly_pattern_is_learned_through_the_hour_part_and_passes_parity(tmp_path):
    rng = np.random.default_rng(6)
    n = 900
    stamps = (np.datetime64("2021-01-01T00:00") + rng.integers(0, 700, n).astype("timedelta64[D]")
              + rng.integers(0, 24, n).astype("timedelta64[h]"))
    hours = (stamps - stamps.astype("datetime64[D]")).astype("timedelta64[h]").astype(int)
    y = (((hours >= 9) & (hours < 17)) ^ (rng.random(n) < 0.05)).astype(int)  # office hours
    lines = ["signup,y"] + [f"{s}Z,{t}" for s, t in zip(stamps.astype(str), y, strict=True)]
    spec = {**SPEC, "features": [{"name": "signup", "type": "datetime",
                                  "parts": ["days", "hour", "weekday", "month", "year"]}],
            "estimator": {"kind": "random_forest", "params": {"n_estimators": 30}}}
    b = make_backend(tmp_path / "ws")
    apply_spec(b, spec)
    put_object(b, "datasets/dates/one.csv", ("\n".join(lines) + "\n").encode())
    out = run_once(b)[-1]
    assert out["status"] == "registered", out
    v = b.ctx.registry.get_version("dates", out["version"])
    assert v["parity"]["passed"] and v["metrics"]["roc_auc"] > 0.9
    svc = b.service(capture=False)
    noon, night = (svc.predict("dates", [{"signup": d}])["probabilities"][0][1]
                   for d in ("2024-02-29T12:00:00Z", "2024-02-29T03:00:00+01:00"))
    assert noon > 0.5 > night
