"""A datetime feature's parts, in scikit-learn and in the ONNX graph alike: the model input is
days since 1970-01-01 UTC (features.parse_days); this transformer expands it into the declared
parts -- `days` (the trend); per cycle (year, week, day), the sine and cosine of the position
in it; and the integer calendar parts year, month, weekday and hour.

The cycles are continuous functions of the days (fmod(days, period) / period, in float32 on
both sides), so the graph and scikit-learn agree to rounding. The integer parts are calendar
arithmetic (features.date_fields: round, floor, +, -, *, / by constants), computed in float64
from the float32 input on both sides: every step is exact or correctly rounded in IEEE 754,
so they are the same integers in onnxruntime and here (a floor never flips).

skl2onnx has no converter for a custom transformer: `register` adds ours (Mod, Div, Mul, Sin,
Cos, Round, Floor, Where, Concat), and the parity gate checks every export as for any other
model."""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from mlops_kit.core.features import SLOTS_PER_DAY, date_fields

__all__ = ["INTEGER_PARTS", "PERIODS", "DateCycles", "register"]

PERIODS = {"year_cycle": 365.2425, "week_cycle": 7.0, "day_cycle": 1.0}
INTEGER_PARTS = ("year", "month", "weekday", "hour")
TWO_PI = np.float32(2 * math.pi)


class DateCycles(TransformerMixin, BaseEstimator):
    def __init__(self, parts: tuple[str, ...] = ("days", "year_cycle", "week_cycle")) -> None:
        self.parts = parts

    def fit(self, X, y=None):  # noqa: ARG002 - stateless
        self.n_features_in_ = 1
        return self

    def transform(self, X) -> np.ndarray:
        x = np.asarray(X, dtype=np.float32).reshape(-1, 1)
        fields = date_fields(x.astype(np.float64)) if set(self.parts) & set(INTEGER_PARTS) \
            else {}
        cols = []
        for part in self.parts:
            if part == "days":
                cols.append(x)
                continue
            if part in INTEGER_PARTS:
                cols.append(fields[part].astype(np.float32))
                continue
            period = np.float32(PERIODS[part])
            angle = np.fmod(x, period) / period * TWO_PI
            cols += [np.sin(angle), np.cos(angle)]
        return np.hstack(cols).astype(np.float32)

    def width(self) -> int:
        return sum(2 if p in PERIODS else 1 for p in self.parts)


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
    fields = _date_fields_graph(x, opv) if set(op.parts) & set(INTEGER_PARTS) else {}
    cols = []
    for part in op.parts:
        if part == "days":
            cols.append(OnnxIdentity(x, op_version=opv))
            continue
        if part in INTEGER_PARTS:
            cols.append(OnnxCast(fields[part], to=onnx_proto.TensorProto.FLOAT, op_version=opv))
            continue
        period = np.array([PERIODS[part]], dtype=np.float32)
        frac = OnnxDiv(OnnxMod(x, period, fmod=1, op_version=opv), period, op_version=opv)
        angle = OnnxMul(frac, np.array([TWO_PI], dtype=np.float32), op_version=opv)
        cols += [OnnxSin(angle, op_version=opv), OnnxCos(angle, op_version=opv)]
    out = OnnxConcat(*cols, axis=1, op_version=opv, output_names=operator.outputs[:1])
    out.add_to(scope, container)


def _date_fields_graph(x, opv: int) -> dict:
    """features.date_fields as ONNX nodes, step for step, in float64."""
    from skl2onnx.algebra.onnx_ops import (
        OnnxAdd,
        OnnxCast,
        OnnxDiv,
        OnnxFloor,
        OnnxLess,
        OnnxMul,
        OnnxRound,
        OnnxSub,
        OnnxWhere,
    )
    from skl2onnx.proto import onnx_proto

    def c(v: float) -> np.ndarray:
        return np.array([v], dtype=np.float64)

    def floor_div(a, b: float):
        return OnnxFloor(OnnxDiv(a, c(b), op_version=opv), op_version=opv)

    def add(a, b):
        return OnnxAdd(a, b if not isinstance(b, float) else c(b), op_version=opv)

    def sub(a, b):
        return OnnxSub(a, b if not isinstance(b, float) else c(b), op_version=opv)

    def mul(a, b: float):
        return OnnxMul(a, c(b), op_version=opv)

    per_day = float(SLOTS_PER_DAY)
    d = OnnxCast(x, to=onnx_proto.TensorProto.DOUBLE, op_version=opv)
    slot = OnnxRound(mul(d, per_day), op_version=opv)  # half to even, as np.round
    day = floor_div(slot, per_day)
    d3 = add(day, 3.0)
    weekday = sub(d3, mul(floor_div(d3, 7.0), 7.0))
    hour = floor_div(sub(slot, mul(day, per_day)), per_day / 24)
    z = add(day, 719468.0)
    era = floor_div(z, 146097.0)
    doe = sub(z, mul(era, 146097.0))
    yoe = floor_div(sub(add(sub(doe, floor_div(doe, 1460.0)), floor_div(doe, 36524.0)),
                        floor_div(doe, 146096.0)), 365.0)
    doy = sub(doe, sub(add(mul(yoe, 365.0), floor_div(yoe, 4.0)), floor_div(yoe, 100.0)))
    mp = floor_div(add(mul(doy, 5.0), 2.0), 153.0)
    month = OnnxWhere(OnnxLess(mp, c(10.0), op_version=opv), add(mp, 3.0), sub(mp, 9.0),
                      op_version=opv)
    march_on = OnnxCast(OnnxLess(month, c(3.0), op_version=opv),
                        to=onnx_proto.TensorProto.DOUBLE, op_version=opv)
    year = add(add(yoe, mul(era, 400.0)), march_on)
    return {"year": year, "month": month, "weekday": weekday, "hour": hour}


_registered = False


def register() -> None:
    """Teach skl2onnx DateCycles (once per process)."""
    global _registered
    if _registered:
        return
    from skl2onnx import update_registered_converter

    update_registered_converter(DateCycles, "MlopsKitDateCycles", _shape, _convert)
    _registered = True
