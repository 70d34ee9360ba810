"""Drift statistics and feature/prediction drift against a reference profile."""

from __future__ import annotations

import io
import math
import subprocess
import sys

import numpy as np
import pytest

from mlops_kit.core import stats
from mlops_kit.core.monitoring.drift import build_prediction_profile, feature_drift, prediction_drift
from mlops_kit.core.spec import parse_spec
from mlops_kit.core.stats import (
    categorical_freqs,
    chi2_test,
    jensen_shannon,
    ks_statistic,
    numeric_freqs,
    psi,
    wasserstein,
)
from mlops_kit.core.synthetic import CHURN_SPEC, churn_columns, churn_csv
from mlops_kit.core.validation.validator import validate_dataset

SPEC = parse_spec(CHURN_SPEC)


@pytest.fixture(scope="module")
def profile() -> dict:
    return validate_dataset(io.BytesIO(churn_csv(5000, seed=7)), "csv", SPEC).profile


def spec_with(**monitoring):
    return parse_spec({**CHURN_SPEC, "monitoring": {**CHURN_SPEC["monitoring"], **monitoring}})


# -- statistics ---------------------------------------------------------------------------
def test_psi_identical_is_zero_and_grows_with_shift():
    ref = [0.25, 0.25, 0.25, 0.25]
    assert psi(ref, ref) == 0.0
    small, big = psi(ref, [0.3, 0.25, 0.25, 0.2]), psi(ref, [0.7, 0.1, 0.1, 0.1])
    assert 0 < small < 0.1 < big
    # Hand-computed: sum((c-r) ln(c/r)).
    assert small == pytest.approx(0.05 * math.log(0.3 / 0.25) - 0.05 * math.log(0.2 / 0.25))
    assert math.isfinite(psi([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]))
    with pytest.raises(ValueError):
        psi([0.5, 0.5], [1.0])


def test_numeric_freqs_bins_are_right_closed_and_skip_nan():
    freqs = numeric_freqs(np.array([1.0, 2.0, 2.0, 3.0, np.nan, 10.0]), [1.0, 2.0, 3.0])
    # (-inf,1] (1,2] (2,3] (3,inf)
    assert freqs == [0.2, 0.4, 0.2, 0.2]
    assert numeric_freqs(np.array([np.nan]), [1.0]) == [0.0, 0.0]
    assert numeric_freqs(np.array(["1", None, "x", 5]), [2.0]) == [0.5, 0.5]


def test_categorical_freqs_normalises_keys():
    assert categorical_freqs(["a", "b", None, "a", float("nan"), ""]) == {"a": 2 / 3, "b": 1 / 3}
    assert categorical_freqs([1, 1.0, "1", np.int64(0)]) == {"1": 0.75, "0": 0.25}


def test_ks_statistic_matches_known_values():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 2000), rng.normal(0, 1, 2000)
    stat, p = ks_statistic(a, b)
    assert stat < 0.05 and p > 0.05
    stat, p = ks_statistic(a, rng.normal(0.5, 1, 2000))
    assert 0.15 < stat < 0.25 and p < 1e-10
    # Disjoint samples: D = 1.
    stat, p = ks_statistic([1, 2, 3], [10, 11, 12])
    assert stat == 1.0 and p < 0.1
    # The Kolmogorov survival function at 1.36 is the textbook 5% point.
    assert stats._kolmogorov_sf(1.36) == pytest.approx(0.049, abs=0.002)
    assert stats._kolmogorov_sf(1.63) == pytest.approx(0.0098, abs=0.0005)


def test_wasserstein_is_shift_over_ref_std():
    rng = np.random.default_rng(1)
    ref = rng.normal(10, 2, 5000)
    assert wasserstein(ref, ref + 3) == pytest.approx(3 / ref.std(), rel=1e-6)
    assert wasserstein([0, 1], [0, 1]) == 0.0


def test_jensen_shannon_bounds():
    assert jensen_shannon({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0.0
    assert jensen_shannon({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)
    mid = jensen_shannon({"a": 0.5, "b": 0.5}, {"a": 0.9, "b": 0.1})
    assert 0 < mid < 1


def test_chi2_wilson_hilferty_p_value():
    ref = {"a": 0.5, "b": 0.5}
    stat, p = chi2_test(ref, {"a": 50, "b": 50})
    assert stat == 0.0 and p > 0.99
    # 1 dof, stat 3.84 is the 5% point; Wilson-Hilferty is within a few thousandths there.
    stat, p = chi2_test(ref, {"a": 60, "b": 40})
    assert stat == pytest.approx(4.0) and p == pytest.approx(0.0455, abs=0.006)
    # 10 dof: 23.21 is the 1% point; counts 134/66 give stat 23.12 (exact p = 0.0103).
    keys = [str(i) for i in range(11)]
    counts = {k: 100 for k in keys}
    counts["0"], counts["1"] = 134, 66
    stat, p = chi2_test({k: 1 / 11 for k in keys}, counts)
    assert stat == pytest.approx(23.12) and p == pytest.approx(0.0103, abs=0.001)


# -- feature drift ------------------------------------------------------------------------
def test_planted_drift_is_detected_and_named(profile):
    result = feature_drift(profile, churn_columns(2000, seed=3, drift=1.0), SPEC)
    assert result["drifted"] and result["rows"] == 2000
    feats = result["features"]
    assert {"monthly_charges", "support_calls", "plan", "payment"} <= set(
        result["drifted_features"]
    )
    assert {"tenure_months", "age", "region"}.isdisjoint(result["drifted_features"])
    charges = feats["monthly_charges"]
    assert (
        charges["psi"] > 1 and charges["method"] == "psi" and charges["statistic"] == charges["psi"]
    )
    assert charges["threshold"] == 0.2 and charges["reasons"][0].startswith("psi ")
    plan = feats["plan"]
    assert plan["new_categories"] == ["enterprise"] and plan["new_category_rate"] > 0.25
    assert any("enterprise" in r for r in plan["reasons"])
    assert plan["out_of_range_rate"] == 0.0  # enterprise is allowed by the spec, just unseen
    payment = feats["payment"]
    assert payment["missing_rate_increase"] > 0.2 and payment["null_rate_cur"] > 0.25
    assert any(r.startswith("missing rate rose") for r in payment["reasons"])
    assert payment["null_rate_ref"] == pytest.approx(profile["features"]["payment"]["null_rate"])


def test_no_drift_control_stays_quiet(profile):
    result = feature_drift(profile, churn_columns(2000, seed=99, drift=0.0), SPEC)
    assert not result["drifted"] and result["drifted_features"] == []
    for name, entry in result["features"].items():
        assert entry["psi"] < 0.05, name
        assert entry["reasons"] == []


@pytest.mark.parametrize("method", ["ks", "wasserstein"])
def test_numeric_methods(profile, method):
    spec = spec_with(numeric_method=method, threshold=0.5)
    hot = feature_drift(profile, churn_columns(2000, seed=3, drift=1.0), spec)["features"]
    cold = feature_drift(profile, churn_columns(2000, seed=99, drift=0.0), spec)["features"]
    assert hot["monthly_charges"]["method"] == method and hot["monthly_charges"]["drifted"]
    assert not cold["monthly_charges"]["drifted"] and not cold["age"]["drifted"]
    if method == "ks":
        assert (
            hot["monthly_charges"]["p_value"] < 0.01 and hot["monthly_charges"]["threshold"] == 0.1
        )
        assert cold["monthly_charges"]["p_value"] > 0.01
    else:
        assert hot["monthly_charges"]["statistic"] == pytest.approx(60 / 25, rel=0.15)


@pytest.mark.parametrize("method", ["chi2", "jensen_shannon"])
def test_categorical_methods(profile, method):
    spec = spec_with(categorical_method=method)
    hot = feature_drift(profile, churn_columns(2000, seed=3, drift=1.0), spec)["features"]
    cold = feature_drift(profile, churn_columns(2000, seed=99, drift=0.0), spec)["features"]
    assert hot["plan"]["method"] == method and hot["plan"]["drifted"]
    assert not cold["plan"]["drifted"] and not cold["region"]["drifted"]
    assert hot["plan"]["statistic"] > cold["plan"]["statistic"]


def test_global_drift_method_applies_when_per_type_is_default(profile):
    result = feature_drift(profile, churn_columns(500, seed=3), spec_with(drift_method="ks"))
    assert result["features"]["age"]["method"] == "ks"
    assert result["features"]["plan"]["method"] == "psi"


def test_out_of_range_and_unknown_categories(profile):
    cols = churn_columns(1000, seed=5)
    cols["age"] = [150.0 if i % 10 == 0 else v for i, v in enumerate(cols["age"])]
    cols["region"] = ["atlantis" if i % 10 == 0 else v for i, v in enumerate(cols["region"])]
    result = feature_drift(profile, cols, SPEC)
    age, region = result["features"]["age"], result["features"]["region"]
    assert age["out_of_range_rate"] == pytest.approx(0.1) and age["drifted"]
    assert any("outside [18.0, 120.0]" in r for r in age["reasons"])
    assert region["out_of_range_rate"] == pytest.approx(0.1) and region["new_categories"] == [
        "atlantis"
    ]
    assert set(result["drifted_features"]) == {"age", "region"}


def test_values_are_coerced_safely(profile):
    cols = churn_columns(500, seed=5)
    cols["age"] = [str(v) if i % 2 else v for i, v in enumerate(cols["age"])]
    cols["age"][0], cols["age"][1], cols["age"][2] = None, float("nan"), "n/a"
    result = feature_drift(profile, cols, SPEC)
    assert result["features"]["age"]["null_rate_cur"] == pytest.approx(3 / 500)
    assert not result["features"]["age"]["drifted"]


def test_missing_column_and_min_rows(profile):
    cols = churn_columns(500, seed=5)
    del cols["age"]
    result = feature_drift(profile, cols, SPEC)
    assert result["features"]["age"]["null_rate_cur"] == 1.0 and "age" in result["drifted_features"]
    few = feature_drift(profile, churn_columns(20, seed=3, drift=1.0), SPEC)
    assert (
        few["insufficient_data"]
        and not few["drifted"]
        and few["features"]["monthly_charges"]["psi"] > 0
    )


# -- prediction drift ---------------------------------------------------------------------
def test_prediction_drift_classification():
    ref = build_prediction_profile(np.array([0] * 700 + [1] * 300), "binary_classification")
    assert ref == {"type": "categorical", "null_rate": 0.0, "freqs": {"0": 0.7, "1": 0.3}}
    same = prediction_drift(ref, [0] * 69 + [1] * 31)
    assert not same["drifted"] and same["psi"] < 0.01
    shifted = prediction_drift(ref, [0.0] * 30 + [1.0] * 70)
    assert shifted["drifted"] and shifted["psi"] > 0.5 and shifted["freqs"] == {"0": 0.3, "1": 0.7}


def test_prediction_drift_regression():
    rng = np.random.default_rng(2)
    ref = build_prediction_profile(rng.normal(100, 10, 4000), "regression")
    assert ref["type"] == "numeric" and len(ref["edges"]) == 9 and len(ref["sample"]) == 1000
    assert sum(ref["freqs"]) == pytest.approx(1.0) and ref["mean"] == pytest.approx(100, abs=1)
    assert not prediction_drift(ref, rng.normal(100, 10, 1000))["drifted"]
    moved = prediction_drift(ref, rng.normal(115, 10, 1000))
    assert moved["drifted"] and moved["ks_statistic"] > 0.4 and moved["reasons"]


def test_drift_module_imports_no_heavy_libraries():
    code = (
        "import sys, mlops_kit.core.monitoring.drift; "
        "print(sorted(m for m in ('pyarrow', 'pandas', 'scipy', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
