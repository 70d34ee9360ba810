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
    cv_std: dict[str, float] | None = None,
) -> tuple[bool, list[str], dict[str, Any]]:
    """Apply the spec's promotion policy. Returns (promote?, reasons it was not, gate details).
    `basis` says where the champion's metrics come from (re-scored, or recorded and why).
    A tie never replaces the champion: the gain must be positive and at least min_gain, and
    with `significance: k` at least k times the metric's spread over CV folds (`cv_std`)."""
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
                required = spec_promotion.min_gain
                # a tie never wins, unless a negative min_gain explicitly accepts losses
                ok = gain >= required and (gain > 0 or required < 0)
                gates["gain"] = {"champion": theirs, "gain": gain, "required": required,
                                 "passed": ok, "basis": basis}
                if not ok:
                    reasons.append(
                        (f"{metric} ties the champion ({theirs:.4f}): a tie never replaces it"
                         if gain == 0 else
                         f"{metric} gain {gain:+.4f} over the champion ({theirs:.4f}) is "
                         f"below the required {required}")
                        + (f" (compared with {basis})" if basis else "")
                    )
                significance = getattr(spec_promotion, "significance", None)
                if significance is not None:
                    spread = _number((cv_std or {}).get(metric))
                    noise = None if spread is None else significance * spread
                    passed = noise is not None and gain > noise
                    gates["significance"] = {"required": noise, "cv_std": spread,
                                             "k": significance, "gain": gain,
                                             "passed": passed}
                    if noise is None:
                        reasons.append(f"promotion.significance: no CV spread of {metric} to "
                                       "compare the gain with")
                    elif not passed:
                        reasons.append(
                            f"{metric} gain {gain:+.4f} is within the noise: {significance:g} x "
                            f"the CV folds' std {spread:.4f} = {noise:.4f}")
    if spec_promotion.require_approval:
        gates["approval"] = {"required": True}
    return (not reasons, reasons, gates)
