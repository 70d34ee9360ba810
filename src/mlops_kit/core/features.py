"""Turning records into model inputs. Shared by training (sklearn) and serving (onnxruntime), so
both see exactly the same encoding. numpy only: serving must not import sklearn/pandas.

Encoding contract (the ONNX graph has one input per feature, shape [N, 1]):
- numeric: float32, missing -> NaN (the pipeline's imputer fills it)
- categorical: string, missing -> MISSING_CATEGORY (skl2onnx's imputer only handles string
  missing values for string columns, so missingness is its own category instead)
- boolean: float32 1.0 / 0.0, missing -> NaN (imputed like a numeric feature)
- datetime: float32 days since 1970-01-01 UTC (datetime_days), missing -> NaN
- text: string after normalise_text (the one text transform, training and serving), missing
  -> "" (no terms)

Id columns (`role: id`) are not model inputs: records_to_inputs adds them to the feed as
strings so captures carry them (the predictor feeds onnxruntime the model's inputs only).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

# the kinds of feature: a ModelSpec's (training) and spec_light's (the serve function) alike
from mlops_kit.core.spec_light import (
    BooleanFeature,
    CategoricalFeature,
    DatetimeFeature,
    NumericFeature,
    TextFeature,
)
from mlops_kit.errors import ValidationError

if TYPE_CHECKING:
    from mlops_kit.core.spec import ModelSpec as _ModelSpec
    from mlops_kit.core.spec_light import ServingSpec

    # either reading of a spec: ModelSpec (training, scoring) or spec_light's (the serve path)
    AnySpec: TypeAlias = _ModelSpec | ServingSpec
    ModelSpec: TypeAlias = AnySpec

MISSING_CATEGORY = "__missing__"
OTHER_CATEGORY = "__other__"  # a value pooled into the other bucket (never a learned level)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def coerce_numeric(name: str, value: Any, feature: NumericFeature, row: int) -> float:
    if _is_missing(value):
        if not feature.nullable:
            raise ValidationError(f"instances[{row}].{name}: is required (not nullable)", field=name)
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValidationError(
            f"instances[{row}].{name}: expected a number, got {type(value).__name__}", field=name
        )
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"instances[{row}].{name}: expected a number, got {str(value)[:40]!r}", field=name
        ) from None
    except OverflowError:  # an int beyond float range, e.g. 10**400
        raise ValidationError(f"instances[{row}].{name}: must be a finite number",
                              field=name) from None
    if not math.isfinite(number):
        raise ValidationError(f"instances[{row}].{name}: must be a finite number", field=name)
    if feature.min is not None and number < feature.min:
        raise ValidationError(
            f"instances[{row}].{name}: {number:g} is below the minimum {feature.min:g}", field=name
        )
    if feature.max is not None and number > feature.max:
        raise ValidationError(
            f"instances[{row}].{name}: {number:g} is above the maximum {feature.max:g}", field=name
        )
    return number


def coerce_category(name: str, value: Any, feature: CategoricalFeature, row: int) -> str:
    if _is_missing(value):
        if not feature.nullable:
            raise ValidationError(f"instances[{row}].{name}: is required (not nullable)", field=name)
        return MISSING_CATEGORY
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValidationError(
            f"instances[{row}].{name}: expected a string, got {type(value).__name__}", field=name
        )
    text = str(value)
    if len(text) > 256:
        raise ValidationError(f"instances[{row}].{name}: longer than 256 characters", field=name)
    if feature.categories is not None and text not in feature.categories:
        if feature.unknown == "other":
            return OTHER_CATEGORY  # encodes as the other bucket (all zeros)
        raise ValidationError(
            f"instances[{row}].{name}: {text[:40]!r} is not one of {feature.categories}",
            field=name,
        )
    return text


MAX_TEXT = 10_000
_NOT_WORD = re.compile(r"[^\w]+")
_WORD = re.compile(r"\w{2,}")  # the maximal runs of 2+ word characters: what _NOT_WORD leaves


def normalise_text(value: str) -> str:
    """Lower case, split on anything that is not a letter, digit or '_', keep words of 2+
    characters, one space between. scikit-learn drops 1-character tokens and the ONNX
    tokenizer does not ("can't" -> "can"): on normalised text both find the same words and
    n-grams. Idempotent."""
    return " ".join(w for w in _NOT_WORD.split(value.lower()) if len(w) > 1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_days(text: str, fmt: str | None = None) -> float | None:
    """Days since 1970-01-01 UTC of an ISO 8601 date/timestamp (or `fmt`), None if it is not
    one. The one datetime transform: validation, training and serving all call it."""
    try:
        moment = datetime.strptime(text.strip(), fmt) if fmt else \
            datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH).total_seconds() / 86400.0


def format_days(days: float, fmt: str | None = None) -> str:
    """The text parse_days reads back as `days` (to the nearest 5 minutes: what a captured
    float32 day count holds): ISO 8601 in UTC ("2024-02-29T13:00:00Z", or the date alone at
    midnight), or strftime(fmt). Retraining writes captured dates back into a dataset with it."""
    slot = round(days * SLOTS_PER_DAY)
    moment = _EPOCH + timedelta(minutes=slot * (1440 // SLOTS_PER_DAY))
    if fmt:
        return moment.strftime(fmt)
    if slot % SLOTS_PER_DAY == 0:
        return moment.date().isoformat()
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def datetime_days(values: Sequence[Any], fmt: str | None = None,
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """(days since the epoch, NaN where missing; a mask of the values that are no date)."""
    out = np.full(len(values), np.nan)
    bad = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if _is_missing(v):
            continue
        days = parse_days(v, fmt) if isinstance(v, str) else None
        if days is None:
            bad[i] = True
        else:
            out[i] = days
    return out, (bad if bad.any() else None)


def coerce_datetime(name: str, value: Any, feature: DatetimeFeature, row: int) -> float:
    if _is_missing(value):
        if not feature.nullable:
            raise ValidationError(f"instances[{row}].{name}: is required (not nullable)", field=name)
        return math.nan
    days = parse_days(value, feature.format) if isinstance(value, str) else None
    if days is None:
        want = f"the format {feature.format!r}" if feature.format else \
            "an ISO 8601 date or timestamp (2024-02-29, 2024-02-29T13:05:00Z)"
        raise ValidationError(f"instances[{row}].{name}: {str(value)[:40]!r} is not {want}",
                              field=name)
    return days


def text_tokens(value: Any) -> list[str]:
    """The words the model's TF-IDF counts in a text: normalise_text's, split on the blank
    (the vectorizer's token pattern on normalised text, training.fit). [] when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return _WORD.findall(str(value).lower())  # normalise_text's words, without the join


# the parts of a date whose distribution monitoring compares, per declared DatePart, and the
# number of values each takes (month 1-12 is counted 0-11)
CALENDAR_OF_PART = {"year_cycle": "month", "week_cycle": "weekday", "day_cycle": "hour",
                    "month": "month", "weekday": "weekday", "hour": "hour"}
CALENDAR_SIZES = {"month": 12, "weekday": 7, "hour": 24}
SLOTS_PER_DAY = 288  # 5-minute slots: a float32 day count resolves ~3 minutes in 2020


def date_fields(days: np.ndarray) -> dict[str, np.ndarray]:
    """Integer calendar fields (UTC, as float64) of days since 1970-01-01: year, month (1-12),
    weekday (Monday 0; 1970-01-01 was a Thursday) and hour (0-23), by H. Hinnant's
    civil-from-days algorithm (the proleptic Gregorian calendar, leap days included).

    The time is first rounded to the nearest 5 minutes: the model's input is float32 days,
    which in this century resolve about 2.8 minutes, so 13:00 may arrive as 12:57:11; rounded,
    it is 13:00 again. Only floor, round, +, -, *, / by constants and a comparison, each of
    which the ONNX graph (training.date_cycles) computes the same in float64, so the integer
    parts are identical in scikit-learn and onnxruntime."""
    slot = np.round(np.asarray(days, dtype=np.float64) * SLOTS_PER_DAY)
    day = np.floor(slot / SLOTS_PER_DAY)
    weekday = (day + 3) - 7 * np.floor((day + 3) / 7)
    hour = np.floor((slot - day * SLOTS_PER_DAY) / (SLOTS_PER_DAY / 24))
    z = day + 719468
    era = np.floor(z / 146097)
    doe = z - era * 146097
    yoe = np.floor((doe - np.floor(doe / 1460) + np.floor(doe / 36524)
                    - np.floor(doe / 146096)) / 365)
    doy = doe - (365 * yoe + np.floor(yoe / 4) - np.floor(yoe / 100))
    mp = np.floor((5 * doy + 2) / 153)
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month < 3)
    return {"year": year, "month": month, "weekday": weekday, "hour": hour}


def calendar_parts(days: np.ndarray, parts: Sequence[str]) -> dict[str, np.ndarray]:
    """The calendar parts monitoring counts (month 0-11, weekday 0-6, hour 0-23) of finite
    days since 1970-01-01 (date_fields)."""
    fields = date_fields(days)
    out: dict[str, np.ndarray] = {}
    for part in parts:
        if part in CALENDAR_SIZES:
            out[part] = (fields[part] - (part == "month")).astype(np.int64)
    return out


def text_words(values: Sequence[Any]) -> np.ndarray:
    """Words per text after normalise_text, NaN when there are none (missing or empty): what
    validation profiles and drift compares for a text feature (its length distribution and
    missing rate), the same on a dataset's raw text and on captured normalised text."""
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        n = len(text_tokens(v))
        if n:
            out[i] = n
    return out


def coerce_text(name: str, value: Any, feature: TextFeature, row: int) -> str:
    if _is_missing(value):
        if not feature.nullable:
            raise ValidationError(f"instances[{row}].{name}: is required (not nullable)", field=name)
        return ""
    if not isinstance(value, str):
        raise ValidationError(
            f"instances[{row}].{name}: expected text, got {type(value).__name__}", field=name)
    if len(value) > MAX_TEXT:
        raise ValidationError(f"instances[{row}].{name}: longer than {MAX_TEXT} characters",
                              field=name)
    return normalise_text(value)


def coerce_boolean(name: str, value: Any, feature: BooleanFeature, row: int) -> float:
    if _is_missing(value):
        if not feature.nullable:
            raise ValidationError(f"instances[{row}].{name}: is required (not nullable)", field=name)
        return math.nan
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)) and value in (0, 1):
        return float(value)
    parsed = feature.parse(value) if isinstance(value, str) else None
    if parsed is None:
        raise ValidationError(
            f"instances[{row}].{name}: {str(value)[:40]!r} is not a boolean: use true/false or "
            f"one of {feature.true_values} / {feature.false_values}", field=name)
    return parsed


def check_fields(spec: ModelSpec, row: int, record: Mapping[str, Any], *,
                 reject_unknown: bool) -> None:
    """Requests are strict by default. A field that is not a feature is a 400 naming it (with
    the closest feature name: it is most often a typo) unless the spec says
    `serving: {unknown_fields: ignore}`; a missing feature is a 400 unless it is nullable."""
    names = spec.feature_names
    if reject_unknown:
        known = {*names, *spec.ids, *spec.ignored}
        extra = sorted(str(k) for k in record if k not in known)
        if extra:
            import difflib  # only for an error's hint: not on every cold start

            close = difflib.get_close_matches(extra[0], names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; the features are {names}"
            raise ValidationError(
                f"instances[{row}].{extra[0][:60]}: unknown field{hint}", field=extra[0][:60])
    for f in spec.features:
        if not f.nullable and f.name not in record:
            raise ValidationError(
                f"instances[{row}].{f.name}: is required (missing, and the spec does not say "
                "nullable: true)", field=f.name)


def records_to_inputs(
    spec: ModelSpec, records: Sequence[Mapping[str, Any]], *, strict_unknown: bool | None = None
) -> dict[str, np.ndarray]:
    """Validate request records against the spec and build the ONNX input feed. Unknown
    fields follow spec.serving.unknown_fields unless strict_unknown overrides it."""
    reject_unknown = spec.serving.unknown_fields == "reject" if strict_unknown is None \
        else strict_unknown
    columns: dict[str, list] = {f.name: [] for f in spec.features}
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise ValidationError(
                f"instances[{i}]: expected an object of feature values", field="instances"
            )
        check_fields(spec, i, rec, reject_unknown=reject_unknown)
        for f in spec.features:
            value = rec.get(f.name)
            if isinstance(f, NumericFeature):
                columns[f.name].append(coerce_numeric(f.name, value, f, i))
            elif isinstance(f, BooleanFeature):
                columns[f.name].append(coerce_boolean(f.name, value, f, i))
            elif isinstance(f, TextFeature):
                columns[f.name].append(coerce_text(f.name, value, f, i))
            elif isinstance(f, DatetimeFeature):
                columns[f.name].append(coerce_datetime(f.name, value, f, i))
            else:
                # (a ModelSpec's categorical feature: a spec_light kind by registration)
                columns[f.name].append(coerce_category(f.name, value, f, i))  # type: ignore[arg-type]
    feed = columns_to_inputs(spec, columns)
    for name in spec.ids:  # carried into captures, never into the model
        feed[name] = np.asarray([MISSING_CATEGORY if _is_missing(r.get(name)) else
                                 str(r.get(name))[:256] for r in records],
                                dtype=object).reshape(-1, 1)
    return feed


def columns_to_inputs(spec: ModelSpec, columns: Mapping[str, Sequence]) -> dict[str, np.ndarray]:
    feed: dict[str, np.ndarray] = {}
    for f in spec.features:
        col = columns[f.name]
        if isinstance(f, (NumericFeature, BooleanFeature, DatetimeFeature)):
            feed[f.name] = np.asarray(col, dtype=np.float32).reshape(-1, 1)
        elif isinstance(f, TextFeature):
            arr = np.asarray(["" if _is_missing(v) else normalise_text(str(v)) for v in col],
                             dtype=object)
            feed[f.name] = arr.reshape(-1, 1)
        else:
            arr = np.asarray(
                [MISSING_CATEGORY if _is_missing(v) else str(v) for v in col], dtype=object
            )
            feed[f.name] = arr.reshape(-1, 1)
    return feed
