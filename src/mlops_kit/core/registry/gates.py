"""Promotion gates: the spec's policy (minimum metric, gain over the champion re-scored on
the same holdout, parity, approval) applied to a candidate. Pure; no table access."""

from __future__ import annotations

from typing import Any


def decide_promotion(
    spec_promotion: Any,
    higher_is_better: bool,
    candidate: dict[str, float],
    parity_passed: bool,
    champion: dict[str, float] | None,
) -> tuple[bool, list[str], dict[str, Any]]:
    """Apply the spec's promotion policy. Returns (promote?, reasons it was not, gate details)."""
    metric = spec_promotion.metric
    value = candidate.get(metric)
    reasons: list[str] = []
    gates: dict[str, Any] = {"metric": metric, "value": value}
    if not parity_passed:
        reasons.append("parity gate failed: the ONNX model disagrees with the trained model")
    if value is None:
        reasons.append(f"metric {metric!r} was not computed")
    else:
        sign = 1 if higher_is_better else -1
        if spec_promotion.minimum is not None:
            ok = sign * (value - spec_promotion.minimum) >= 0
            gates["minimum"] = {"required": spec_promotion.minimum, "passed": ok}
            if not ok:
                reasons.append(
                    f"{metric} {value:.4f} does not meet the minimum {spec_promotion.minimum}"
                )
        if champion and champion.get(metric) is not None:
            gain = sign * (value - champion[metric])
            ok = gain >= spec_promotion.min_gain
            gates["gain"] = {
                "champion": champion[metric], "gain": gain, "required": spec_promotion.min_gain,
                "passed": ok,
            }
            if not ok:
                reasons.append(
                    f"{metric} gain {gain:+.4f} over the champion ({champion[metric]:.4f}) is "
                    f"below the required {spec_promotion.min_gain}"
                )
    if spec_promotion.require_approval:
        gates["approval"] = {"required": True}
    return (not reasons, reasons, gates)
