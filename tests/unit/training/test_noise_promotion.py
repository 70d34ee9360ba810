"""Issue 23 item 4: promotion ignores noise. The same rows with their columns reordered (or
an extra column) make no new version; a tie or a gain within the CV folds' spread never
replaces the champion; min_gain defaults to a positive value."""

from __future__ import annotations

import csv
import io

import pytest

from mlops_kit.core.registry import decide_promotion
from mlops_kit.core.spec import PromotionPolicy, parse_spec
from mlops_kit.core.synthetic import churn_csv
from mlops_kit.local.worker import run_once, upload
from tests.support import FAST_SPEC, apply_spec


def _reordered(data: bytes, extra: bool = False) -> bytes:
    rows = list(csv.reader(io.StringIO(data.decode())))
    order = list(reversed(range(len(rows[0]))))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for n, row in enumerate(rows):
        w.writerow([row[i] for i in order] + ([("note" if n == 0 else f"x{n}")] if extra else []))
    return buf.getvalue().encode()


def _upload(b, tmp_path, name: str, data: bytes) -> dict:
    path = tmp_path / name
    path.write_bytes(data)
    upload(b, path, "churn")
    return run_once(b)[-1]


def test_the_same_rows_reordered_or_widened_make_no_new_version(backend, tmp_path):
    apply_spec(backend, FAST_SPEC)
    data = churn_csv(900, seed=4)
    first = _upload(backend, tmp_path, "a.csv", data)
    assert first["status"] == "registered" and first["version"] == 1
    for name, copy in (("reordered.csv", _reordered(data)),
                       ("extra-column.csv", _reordered(data, extra=True))):
        out = _upload(backend, tmp_path, name, copy)
        assert out["status"] == "unchanged" and out["version"] == 1, out
        assert "same data and spec as v1" in out["reason"]
    # the spec's description and monitoring policy are not its meaning for training
    apply_spec(backend, {**FAST_SPEC, "description": "reworded",
                         "monitoring": {"threshold": 0.3, "retrain_on_drift": True}})
    assert _upload(backend, tmp_path, "again.csv", _reordered(data))["status"] == "unchanged"
    # another estimator setting is: a new version
    apply_spec(backend, {**FAST_SPEC, "estimator": {"kind": "logistic_regression",
                                                    "params": {"C": 0.5}}})
    assert _upload(backend, tmp_path, "c.csv", data)["version"] == 2
    assert [v["version"] for v in backend.ctx.registry.list_versions("churn")] == [1, 2]
    events = [m["message"]["event"] for m in backend.ctx.notifier.messages()]
    assert events.count("unchanged") == 3


def test_a_tie_never_replaces_the_champion():
    policy = PromotionPolicy(metric="roc_auc", min_gain=0.0)
    ok, reasons, gates = decide_promotion(policy, True, {"roc_auc": 0.91}, True,
                                          {"roc_auc": 0.91})
    assert not ok and "a tie never replaces it" in reasons[0]
    assert gates["gain"]["passed"] is False
    assert PromotionPolicy().min_gain > 0  # the default ignores noise-level gains
    ok, reasons, _ = decide_promotion(PromotionPolicy(), True, {"roc_auc": 0.9104}, True,
                                      {"roc_auc": 0.91})
    assert not ok and "below the required 0.001" in reasons[0]


def test_significance_compares_the_gain_with_the_cv_spread():
    policy = PromotionPolicy(metric="roc_auc", min_gain=0.0, significance=1.0)
    # the case: +0.0004 against a CV standard deviation of 0.009
    ok, reasons, gates = decide_promotion(policy, True, {"roc_auc": 0.9004}, True,
                                          {"roc_auc": 0.9}, cv_std={"roc_auc": 0.009})
    assert not ok and "within the noise" in reasons[-1]
    assert gates["significance"]["required"] == pytest.approx(0.009)
    ok, _, _ = decide_promotion(policy, True, {"roc_auc": 0.92}, True, {"roc_auc": 0.9},
                                cv_std={"roc_auc": 0.009})
    assert ok
    # for a lower-is-better metric the gain is the decrease
    rmse = PromotionPolicy(metric="rmse", min_gain=0.0, significance=2.0)
    ok, reasons, _ = decide_promotion(rmse, False, {"rmse": 9.9}, True, {"rmse": 10.0},
                                      cv_std={"rmse": 0.2})
    assert not ok and "within the noise" in reasons[-1]


def test_training_measures_the_cv_spread_when_significance_is_set(backend, tmp_path):
    spec = {**FAST_SPEC, "promotion": {"metric": "roc_auc", "min_gain": 0.0,
                                       "significance": 1.0, "cv_folds": 3}}
    apply_spec(backend, spec)
    assert _upload(backend, tmp_path, "a.csv", churn_csv(900, seed=4))["promoted"]
    # new data from the same process: any gain is noise at this size
    out = _upload(backend, tmp_path, "b.csv", churn_csv(900, seed=5))
    gates = backend.ctx.registry.get_version("churn", 2)["gates"]
    assert gates["significance"]["cv_std"] > 0 and gates["significance"]["k"] == 1.0
    assert out["promoted"] is (gates["significance"]["passed"] and gates["gain"]["passed"])
    # a spec without the new options hashes as before they existed
    assert parse_spec(FAST_SPEC).spec_hash() == parse_spec(
        {**FAST_SPEC, "promotion": {**FAST_SPEC["promotion"], "cv_folds": 5}}).spec_hash()


def test_the_content_hash_depends_on_the_rows_only():
    from mlops_kit.core.validation.validator import validate_dataset

    spec = parse_spec(FAST_SPEC)
    data = churn_csv(3000, seed=6)

    def content(raw: bytes, chunk: int = 8 << 20) -> str:
        return validate_dataset(io.BytesIO(raw), "csv", spec, chunk_bytes=chunk).report[
            "content_hash"]

    base = content(data)
    assert content(data, chunk=4096) == base  # however the reader chunks the file
    assert content(_reordered(data)) == base == content(_reordered(data, extra=True))
    lines = data.decode().splitlines()
    changed = "\n".join([*lines[:5], lines[5].replace(",basic,", ",premium,", 1), *lines[6:]])
    assert changed != data.decode().rstrip("\n") and content((changed + "\n").encode()) != base
    swapped = "\n".join([lines[0], lines[2], lines[1], *lines[3:]]) + "\n"
    assert content(swapped.encode()) != base  # rows are data: their order counts
