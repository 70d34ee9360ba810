"""The model spec as serving reads it, without pydantic (issue 28, cold start).

Serving needs a version's feature schema (names, kinds, categories, ranges, nullable,
defaults, boolean spellings, date parts), its ids and ignored columns, its task and target and
its serving policy. The pydantic ModelSpec (core/spec.py) stays the spec of everything else;
importing pydantic and building its models was ~60-90 ms of CPU at every serve cold start.

read_spec() reads a version's stored spec.json (written by ModelSpec.canonical_json(), so
already validated) into plain frozen dataclasses with the pydantic models' field names. It
accepts only what it checks itself, every rule ModelSpec has for those fields (types as
stored, no coercion; ranges, distinct categories, defaults allowed, spellings, parts; the
spec's name, distinct feature names, the target not a feature, ids/ignored not features);
anything else (a coerced spelling, a broken rule, a field it does not know) goes to
ModelSpec's parse_spec, which answers with its own model or raises its own SpecError: a value
or an error is always pydantic's (tests/unit/test_spec_light.py checks it with hypothesis).
The blocks serving never reads (estimator, validation, promotion, monitoring, search,
training) are only checked to be objects; training and monitoring read them with ModelSpec.

The feature classes are the kinds serving dispatches on: spec.py registers ModelSpec's feature
models as their virtual subclasses (abc), so isinstance(f, NumericFeature) holds for a feature
of either origin and serving code works with both specs.
"""

from __future__ import annotations

import math
from abc import ABCMeta
from collections.abc import Callable, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from mlops_kit.core.layout import NAME_RE
from mlops_kit.errors import SpecError

MAX_FEATURES = 1000
TRUE_SPELLINGS = ["true", "1", "yes", "y", "t"]
FALSE_SPELLINGS = ["false", "0", "no", "n", "f"]
DatePart = Literal["days", "year_cycle", "week_cycle", "day_cycle", "year", "month",
                   "weekday", "hour"]
DATE_PARTS: tuple[DatePart, ...] = ("days", "year_cycle", "week_cycle", "day_cycle")
ALL_DATE_PARTS = frozenset(("days", "year_cycle", "week_cycle", "day_cycle", "year", "month",
                            "weekday", "hour"))


class Task(str, Enum):
    binary = "binary_classification"
    multiclass = "multiclass_classification"
    regression = "regression"

    @property
    def is_classification(self) -> bool:
        return self is not Task.regression


class _Frozen:
    """Fields as class attributes (the defaults) and instance attributes (the values read);
    frozen. Plain classes, not dataclasses: a dataclass compiles its generated methods at every
    import (~0.4 ms a class, measured), on a cold start."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: {name} cannot be set")

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={getattr(self, k)!r}" for k in type(self).__annotations__)
        return f"{type(self).__name__}({shown})"


class _Feature(_Frozen, metaclass=ABCMeta):  # noqa: B024 - an abc for register() only
    name: str

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        """The feature as ModelSpec's model_dump(mode="json") gives it (the metadata route):
        its fields in ModelSpec's order (the annotations below follow it)."""
        return {k: (list(v) if isinstance(v, list) else v)
                for k in type(self).__annotations__ for v in (getattr(self, k),)}


class NumericFeature(_Feature):
    name: str
    type: Literal["numeric"] = "numeric"
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    default: float | None = None


class CategoricalFeature(_Feature):
    name: str
    type: Literal["categorical"] = "categorical"
    categories: list[str] | None = None
    nullable: bool = False
    default: str | None = None
    max_categories: int | None = None
    min_frequency: float | None = None
    unknown: Literal["other", "error"] | None = None


class BooleanFeature(_Feature):
    name: str
    type: Literal["boolean"] = "boolean"
    nullable: bool = False
    true_values: list[str] = list(TRUE_SPELLINGS)
    false_values: list[str] = list(FALSE_SPELLINGS)

    def parse(self, text: str) -> float | None:
        """1.0 / 0.0 for an accepted spelling, None for anything else (as ModelSpec's)."""
        v = text.strip().lower()
        if v in {x.strip().lower() for x in self.true_values}:
            return 1.0
        if v in {x.strip().lower() for x in self.false_values}:
            return 0.0
        return None


class TextFeature(_Feature):
    name: str
    type: Literal["text"] = "text"
    nullable: bool = False
    max_features: int = 500
    ngrams: int = 1


class DatetimeFeature(_Feature):
    name: str
    type: Literal["datetime"] = "datetime"
    nullable: bool = False
    format: str | None = None
    parts: list[str] = list(DATE_PARTS)


Feature = NumericFeature | CategoricalFeature | BooleanFeature | TextFeature | DatetimeFeature


class ServingPolicy(_Frozen):
    unknown_fields: Literal["reject", "ignore"] = "reject"


class SpecViews:
    """The feature views of a spec, shared by ModelSpec and ServingSpec (spec.py registers its
    feature models as these kinds, so isinstance sorts either spec's features)."""

    if TYPE_CHECKING:  # the spec's own fields (a pydantic model's must not be declared here)
        features: Sequence[Any]
        target: str
        ids: list[str]
        ignored: list[str]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[NumericFeature]:
        return [f for f in self.features if isinstance(f, NumericFeature)]

    @property
    def categorical(self) -> list[CategoricalFeature]:
        return [f for f in self.features if isinstance(f, CategoricalFeature)]

    @property
    def datetimes(self) -> list[DatetimeFeature]:
        return [f for f in self.features if isinstance(f, DatetimeFeature)]

    @property
    def texts(self) -> list[TextFeature]:
        return [f for f in self.features if isinstance(f, TextFeature)]

    @property
    def booleans(self) -> list[BooleanFeature]:
        return [f for f in self.features if isinstance(f, BooleanFeature)]

    @property
    def known_columns(self) -> set[str]:
        """Every column the spec names: features, target, ids, ignored."""
        return {*self.feature_names, self.target, *self.ids, *self.ignored}


class ServingSpec(SpecViews, _Frozen):
    """The fields of a ModelSpec serving reads, with its helpers of the same names."""

    name: str
    task: Task
    target: str
    features: list[Feature]
    ids: list[str]
    ignored: list[str]
    serving: ServingPolicy


class _Unsure(Exception):
    """Not checked here: ModelSpec decides."""


def _need(ok: bool) -> None:
    if not ok:
        raise _Unsure


def _str(v: Any) -> str:
    _need(type(v) is str)
    return v


def _opt_str(v: Any) -> str | None:
    return None if v is None else _str(v)


def _bool(v: Any) -> bool:
    _need(type(v) is bool)
    return v


def _int(v: Any, lo: int, hi: float = math.inf) -> int:
    _need(type(v) is int and lo <= v <= hi)
    return v


def _number(v: Any) -> float | None:
    """A JSON number as ModelSpec's float fields keep it (an int becomes a float); not NaN."""
    if v is None:
        return None
    _need(type(v) in (int, float) and abs(v) < 1e300)  # not NaN, inf, nor beyond a float
    return float(v)


def _strs(v: Any) -> list[str]:
    _need(type(v) is list and all(type(x) is str for x in v))
    return list(v)


def _keys(d: Any, allowed: frozenset[str]) -> dict[str, Any]:
    _need(type(d) is dict and d.keys() <= allowed)
    return d


_NUMERIC = frozenset(NumericFeature.__annotations__)
_CATEGORICAL = frozenset(CategoricalFeature.__annotations__)
_BOOLEAN = frozenset(BooleanFeature.__annotations__)
_TEXT = frozenset(TextFeature.__annotations__)
_DATETIME = frozenset(DatetimeFeature.__annotations__)


def _feature(d: Any) -> Feature:
    _need(type(d) is dict and "name" in d)
    kind = d.get("type")
    if kind == "numeric":
        _keys(d, _NUMERIC)
        lo, hi, default = _number(d.get("min")), _number(d.get("max")), _number(d.get("default"))
        _need(lo is None or hi is None or lo <= hi)
        _need(default is None or ((lo is None or default >= lo) and (hi is None or default <= hi)))
        return NumericFeature(name=_str(d["name"]), min=lo, max=hi,
                              nullable=_bool(d.get("nullable", False)), default=default)
    if kind == "categorical":
        _keys(d, _CATEGORICAL)
        cats = d.get("categories")
        if cats is not None:
            cats = _strs(cats)
            _need(len(cats) > 0 and len(set(cats)) == len(cats))
        level = _opt_str(d.get("default"))
        _need(level is None or cats is None or level in cats)
        most = d.get("max_categories")
        freq = _number(d.get("min_frequency"))
        _need(freq is None or freq > 0)
        unknown = d.get("unknown")
        _need(unknown in (None, "other", "error") and (unknown != "error" or cats is not None))
        return CategoricalFeature(name=_str(d["name"]), categories=cats,
                                  nullable=_bool(d.get("nullable", False)), default=level,
                                  max_categories=None if most is None else _int(most, 2),
                                  min_frequency=freq, unknown=unknown)
    if kind == "boolean":
        _keys(d, _BOOLEAN)
        yes = _strs(d.get("true_values", TRUE_SPELLINGS))
        no = _strs(d.get("false_values", FALSE_SPELLINGS))
        t, f = ({v.strip().lower() for v in vs} for vs in (yes, no))
        _need(bool(t) and bool(f) and not t & f)
        return BooleanFeature(name=_str(d["name"]), nullable=_bool(d.get("nullable", False)),
                              true_values=yes, false_values=no)
    if kind == "text":
        _keys(d, _TEXT)
        return TextFeature(name=_str(d["name"]), nullable=_bool(d.get("nullable", False)),
                           max_features=_int(d.get("max_features", 500), 1, 100_000),
                           ngrams=_int(d.get("ngrams", 1), 1, 3))
    if kind == "datetime":
        _keys(d, _DATETIME)
        parts = _strs(d.get("parts", list(DATE_PARTS)))
        _need(bool(parts) and len(set(parts)) == len(parts) and set(parts) <= ALL_DATE_PARTS)
        return DatetimeFeature(name=_str(d["name"]), nullable=_bool(d.get("nullable", False)),
                               format=_opt_str(d.get("format")), parts=parts)
    raise _Unsure


_TOP = frozenset(("name", "task", "target", "positive_class", "features", "estimator",
                  "validation", "promotion", "monitoring", "search", "serving", "training",
                  "ids", "ignored", "test_size", "seed", "description"))
_BLOCKS = ("estimator", "validation", "promotion", "monitoring", "serving", "training")
_TASKS = {t.value: t for t in Task}


def _serving_spec(data: Any) -> ServingSpec:
    _keys(data, _TOP)
    for block in _BLOCKS:  # read by training and monitoring (ModelSpec), not by serving
        _need(type(data.get(block, {})) is dict)
    _need(type(data.get("search")) in (dict, type(None)))
    name, target = _str(data.get("name")), _str(data.get("target"))
    _need(NAME_RE.fullmatch(name) is not None)
    task = _TASKS.get(_str(data.get("task")))
    _need(task is not None)
    positive = data.get("positive_class")
    _need(positive is None or (type(positive) in (str, int, bool) and task is Task.binary))
    raw = data.get("features")
    _need(type(raw) is list and 1 <= len(raw) <= MAX_FEATURES)
    features = [_feature(f) for f in raw]
    names = [f.name for f in features]
    ids, ignored = _strs(data.get("ids", [])), _strs(data.get("ignored", []))
    _need(len(set(names)) == len(names) and target not in names
          and not (set(names) | {target}) & (set(ids) | set(ignored)))
    unknown = _keys(data.get("serving", {}), frozenset(("unknown_fields",))).get(
        "unknown_fields", "reject")
    _need(unknown in ("reject", "ignore"))
    return ServingSpec(name=name, task=task, target=target, features=features, ids=ids,
                       ignored=ignored, serving=ServingPolicy(unknown_fields=unknown))


def read_spec(data: Any, parse_spec: Callable[[Any], Any]) -> Any:
    """A version's stored spec (parsed JSON) for serving: a ServingSpec when every field serving
    reads is as ModelSpec stores it, else ModelSpec's own answer: parse_spec (core.spec's, given
    by the caller: this module never imports pydantic) returns its model or raises its
    SpecError."""
    try:
        return _serving_spec(data)
    except _Unsure:
        pass
    try:
        return parse_spec(data)
    except SpecError:
        raise
    except Exception as exc:  # noqa: BLE001 - ModelSpec's before-validators crash on a few
        # shapes (`ids: true`: TypeError); a stored spec that bad is refused, never a traceback
        raise SpecError(f"invalid spec: {type(exc).__name__}: {str(exc)[:200]}",
                        field="spec") from None
