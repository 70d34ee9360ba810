"""Promotion gates: the spec's policy (minimum metric, gain over the champion re-scored on
the same holdout, parity, approval) applied to a candidate. Pure; no table access.

A metric that is not a number (NaN: e.g. roc_auc of a champion scored on labels it never saw)
is never compared: a NaN candidate metric refuses promotion with that reason, a NaN champion
metric leaves the gain gate unjudged (`gates.gain.passed` is None) with the reason."""

from __future__ import annotations

import math
from typing import Any


def _number(x: Any) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def decide_promotion(
    spec_promotion: Any,
    higher_is_better: bool,
    candidate: dict[str, float],
    parity_passed: bool,
    champion: dict[str, float] | None,
    *,
    basis: str | None = None,
) -> tuple[bool, list[str], dict[str, Any]]:
    """Apply the spec's promotion policy. Returns (promote?, reasons it was not, gate details).
    `basis` says where the champion's metrics come from (re-scored, or recorded and why)."""
    metric = spec_promotion.metric
    raw = candidate.get(metric)
    value = _number(raw)
    reasons: list[str] = []
    gates: dict[str, Any] = {"metric": metric, "value": value}
    if not parity_passed:
        reasons.append("parity gate failed: the ONNX model disagrees with the trained model")
    if value is None:
        reasons.append(f"metric {metric!r} was not computed" if raw is None else
                       f"metric {metric!r} is not a number ({raw}) on the holdout")
    else:
        sign = 1 if higher_is_better else -1
        if spec_promotion.minimum is not None:
            ok = sign * (value - spec_promotion.minimum) >= 0
            gates["minimum"] = {"required": spec_promotion.minimum, "passed": ok}
            if not ok:
                reasons.append(
                    f"{metric} {value:.4f} does not meet the minimum {spec_promotion.minimum}"
                )
        if champion is not None:
            theirs = _number(champion.get(metric))
            if theirs is None:
                gates["gain"] = {"champion": None, "required": spec_promotion.min_gain,
                                 "passed": None, "basis": basis,
                                 "note": f"the champion has no {metric} to compare with; "
                                         "the gain gate was not applied"}
            else:
                gain = sign * (value - theirs)
                ok = gain >= spec_promotion.min_gain
                gates["gain"] = {"champion": theirs, "gain": gain,
                                 "required": spec_promotion.min_gain, "passed": ok,
                                 "basis": basis}
                if not ok:
                    reasons.append(
                        f"{metric} gain {gain:+.4f} over the champion ({theirs:.4f}) is "
                        f"below the required {spec_promotion.min_gain}"
                        + (f" (compared with {basis})" if basis else "")
                    )
    if spec_promotion.require_approval:
        gates["approval"] = {"required": True}
    return (not reasons, reasons, gates)
