"""A realistic synthetic dataset the project makes itself (no downloads): customer churn.

Numeric + categorical features, missing values, a learnable signal, and a `drift` knob that
shifts distributions the way production data drifts (higher charges, a new plan, more nulls).
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np

PLANS = ["basic", "standard", "premium"]
REGIONS = ["north", "south", "east", "west"]
PAYMENTS = ["card", "bank", "paypal"]
COLUMNS = [
    "customer_id",
    "tenure_months",
    "monthly_charges",
    "support_calls",
    "age",
    "plan",
    "region",
    "payment",
    "churned",
]

CHURN_SPEC = {
    "name": "churn",
    "description": "Will a customer cancel next month? (synthetic demo data)",
    "task": "binary_classification",
    "target": "churned",
    "features": [
        {"name": "tenure_months", "type": "numeric", "min": 0, "max": 240},
        {"name": "monthly_charges", "type": "numeric", "min": 0, "max": 1000},
        {"name": "support_calls", "type": "numeric", "min": 0, "max": 100, "nullable": True},
        {"name": "age", "type": "numeric", "min": 18, "max": 120},
        {"name": "plan", "type": "categorical", "categories": PLANS + ["enterprise"]},
        {"name": "region", "type": "categorical", "categories": REGIONS},
        {"name": "payment", "type": "categorical", "categories": PAYMENTS, "nullable": True},
    ],
    "estimator": {"kind": "gradient_boosting", "params": {"n_estimators": 60, "max_depth": 3}},
    "validation": {"min_rows": 200, "max_null_fraction": 0.2, "min_class_fraction": 0.05},
    "promotion": {"metric": "roc_auc", "minimum": 0.7, "min_gain": 0.0},
    "monitoring": {"drift_method": "psi", "threshold": 0.2},
}


def churn_columns(n: int, *, seed: int = 7, drift: float = 0.0) -> dict[str, list]:
    """Column-wise data. drift in [0, 1] shifts charges up, adds a new plan and more nulls."""
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 14.0, n).clip(0, 240).round(0)
    charges = rng.normal(70 + 60 * drift, 25, n).clip(5, 1000).round(2)
    calls = rng.poisson(1.5 + 3 * drift, n).astype(float)
    age = rng.normal(45, 14, n).clip(18, 100).round(0)
    plan_p = [0.5, 0.35, 0.15]
    plan = rng.choice(PLANS, n, p=plan_p).astype(object)
    if drift > 0:
        plan[rng.random(n) < 0.3 * drift] = "enterprise"
    region = rng.choice(REGIONS, n).astype(object)
    payment = rng.choice(PAYMENTS, n, p=[0.5, 0.3, 0.2]).astype(object)
    logit = (
        -1.0
        - 0.05 * tenure
        + 0.025 * (charges - 70)
        + 0.45 * calls
        + np.where(plan == "basic", 0.6, 0.0)
        + np.where(payment == "paypal", 0.4, 0.0)
        - 0.01 * (age - 45)
    )
    prob = 1 / (1 + np.exp(-logit))
    churned = (rng.random(n) < prob).astype(int)
    null_rate = 0.03 + 0.25 * drift
    calls_out: list = [None if rng.random() < null_rate else float(v) for v in calls]
    payment_out: list = [None if rng.random() < null_rate else str(v) for v in payment]
    return {
        "customer_id": [f"c{seed:03d}-{i:07d}" for i in range(n)],
        "tenure_months": tenure.tolist(),
        "monthly_charges": charges.tolist(),
        "support_calls": calls_out,
        "age": age.tolist(),
        "plan": plan.tolist(),
        "region": region.tolist(),
        "payment": payment_out,
        "churned": churned.tolist(),
    }


def churn_records(n: int, *, seed: int = 7, drift: float = 0.0) -> list[dict]:
    cols = churn_columns(n, seed=seed, drift=drift)
    return [{c: cols[c][i] for c in COLUMNS} for i in range(n)]


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def churn_csv(n: int, *, seed: int = 7, drift: float = 0.0) -> bytes:
    return _to_csv(churn_columns(n, seed=seed, drift=drift), n)


def _to_csv(cols: dict[str, list], n: int) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for i in range(n):
        w.writerow([_cell(cols[c][i]) for c in COLUMNS])
    return buf.getvalue().encode()


def broken_churn_csv(n: int = 300, *, seed: int = 11) -> bytes:
    """A dataset that must be quarantined: out-of-range ages, a text value in a numeric column,
    an unknown region, and a missing target."""
    cols = churn_columns(n, seed=seed)
    cols["age"][3] = -4
    cols["age"][10] = 250
    cols["monthly_charges"][5] = "lots"
    cols["region"][7] = "atlantis"
    cols["churned"][9] = None
    return _to_csv(cols, n)
