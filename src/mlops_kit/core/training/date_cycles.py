"""A datetime feature's parts, in scikit-learn and in the ONNX graph alike: the model input is
days since 1970-01-01 UTC (features.parse_days); this transformer expands it into the declared
parts -- `days` (the trend) and, per cycle (year, week, day), the sine and cosine of the
position in it. Continuous functions of the days only (no calendar arithmetic, no floor), so
float32 in the graph and float32 here agree to rounding; the position is fmod(days, period) /
period, computed in float32 on both sides.

skl2onnx has no converter for a custom transformer: `register` adds ours (Mod, Div, Mul, Sin,
Cos, Concat), and the parity gate checks every export as for any other model."""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

__all__ = ["PERIODS", "DateCycles", "register"]

PERIODS = {"year_cycle": 365.2425, "week_cycle": 7.0, "day_cycle": 1.0}
TWO_PI = np.float32(2 * math.pi)


class DateCycles(TransformerMixin, BaseEstimator):
    def __init__(self, parts: tuple[str, ...] = ("days", "year_cycle", "week_cycle")) -> None:
        self.parts = parts

    def fit(self, X, y=None):  # noqa: ARG002 - stateless
        self.n_features_in_ = 1
        return self

    def transform(self, X) -> np.ndarray:
        x = np.asarray(X, dtype=np.float32).reshape(-1, 1)
        cols = []
        for part in self.parts:
            if part == "days":
                cols.append(x)
                continue
            period = np.float32(PERIODS[part])
            angle = np.fmod(x, period) / period * TWO_PI
            cols += [np.sin(angle), np.cos(angle)]
        return np.hstack(cols).astype(np.float32)

    def width(self) -> int:
        return sum(1 if p == "days" else 2 for p in self.parts)


def _shape(operator) -> None:
    from skl2onnx.common.data_types import FloatTensorType

    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType([n, operator.raw_operator.width()])


def _convert(scope, operator, container) -> None:
    from skl2onnx.algebra.onnx_ops import (
        OnnxCast,
        OnnxConcat,
        OnnxCos,
        OnnxDiv,
        OnnxIdentity,
        OnnxMod,
        OnnxMul,
        OnnxSin,
    )
    from skl2onnx.proto import onnx_proto

    op, opv = operator.raw_operator, container.target_opset
    x = OnnxCast(operator.inputs[0], to=onnx_proto.TensorProto.FLOAT, op_version=opv)
    cols = []
    for part in op.parts:
        if part == "days":
            cols.append(OnnxIdentity(x, op_version=opv))
            continue
        period = np.array([PERIODS[part]], dtype=np.float32)
        frac = OnnxDiv(OnnxMod(x, period, fmod=1, op_version=opv), period, op_version=opv)
        angle = OnnxMul(frac, np.array([TWO_PI], dtype=np.float32), op_version=opv)
        cols += [OnnxSin(angle, op_version=opv), OnnxCos(angle, op_version=opv)]
    out = OnnxConcat(*cols, axis=1, op_version=opv, output_names=operator.outputs[:1])
    out.add_to(scope, container)


_registered = False


def register() -> None:
    """Teach skl2onnx DateCycles (once per process)."""
    global _registered
    if _registered:
        return
    from skl2onnx import update_registered_converter

    update_registered_converter(DateCycles, "MlopsKitDateCycles", _shape, _convert)
    _registered = True
