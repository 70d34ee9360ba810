"""The model spec: one pydantic document per model (YAML or JSON), stored under specs/<model>.

A bad spec fails with errors.SpecError naming the field (e.g. `features.2.min: ...`).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from mlops_kit.core import layout, spec_light
from mlops_kit.core.spec_light import (  # shared with serving's light reading of a spec
    DATE_PARTS,
    FALSE_SPELLINGS,
    MAX_FEATURES,
    TRUE_SPELLINGS,
    DatePart,
    Task,
)
from mlops_kit.core.spec_search import EstimatorKind, Search
from mlops_kit.errors import SpecError

MAX_SPEC_BYTES = 256 * 1024
MAX_SPEC_NODES = 100_000  # YAML aliases can expand a tiny file exponentially ("billion laughs")



class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericFeature(_Strict):
    name: str
    type: Literal["numeric"] = "numeric"
    min: float | None = None
    max: float | None = None
    # A request without this feature (or with null) is a 400 unless the spec says nullable.
    nullable: bool = False
    # Served when a request leaves the feature out (a version may add a feature its
    # predecessor's callers do not send only if it is nullable or has a default).
    default: float | None = None

    @model_validator(mode="after")
    def _range(self) -> NumericFeature:
        for bound in ("min", "max"):  # NaN compares false with everything: no range at all
            if getattr(self, bound) is not None and math.isnan(getattr(self, bound)):
                raise ValueError(f"{bound}: must be a number, not NaN")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must be <= max ({self.max})")
        if self.default is not None and not (
                (self.min is None or self.default >= self.min)
                and (self.max is None or self.default <= self.max)):
            raise ValueError(f"default ({self.default:g}) is outside [min, max]")
        return self


class CategoricalFeature(_Strict):
    name: str
    type: Literal["categorical"] = "categorical"
    categories: list[str] | None = Field(
        default=None, description="Allowed values; None accepts any value."
    )
    nullable: bool = False
    default: str | None = None  # served when a request leaves the feature out
    # The long tail: at most max_categories levels (the rest, and any level rarer than
    # min_frequency rows -- or that share of them when < 1 -- pool into one `other` bucket).
    max_categories: int | None = Field(default=None, ge=2)
    min_frequency: float | None = Field(default=None, gt=0)
    # A value outside `categories` at serving: `other` pools it, `error` is a 400. Unset: an
    # error when categories are listed (as before), pooled when they are not.
    unknown: Literal["other", "error"] | None = None

    @field_validator("categories")
    @classmethod
    def _non_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (len(v) == 0 or len(set(v)) != len(v)):
            raise ValueError("categories must be a non-empty list of distinct values")
        return v

    @model_validator(mode="after")
    def _default_allowed(self) -> CategoricalFeature:
        if self.default is not None and self.categories is not None \
                and self.default not in self.categories:
            raise ValueError(f"default {self.default!r} is not one of the categories")
        return self

    @model_validator(mode="after")
    def _unknown_needs_a_list(self) -> CategoricalFeature:
        if self.unknown == "error" and self.categories is None:
            raise ValueError("unknown: error needs the categories listed (which values are "
                             "known?)")
        return self


_TAIL_OPTIONS = ("max_categories", "min_frequency", "unknown")


class BooleanFeature(_Strict):
    """A yes/no column: the listed spellings (case-insensitive, surrounding blanks ignored),
    JSON true/false and the numbers 1/0 are accepted; the model sees 1.0 / 0.0 (float32)."""

    name: str
    type: Literal["boolean"] = "boolean"
    nullable: bool = False
    true_values: list[str] = Field(default_factory=lambda: list(TRUE_SPELLINGS))
    false_values: list[str] = Field(default_factory=lambda: list(FALSE_SPELLINGS))

    @model_validator(mode="after")
    def _spellings(self) -> BooleanFeature:
        t = {v.strip().lower() for v in self.true_values}
        f = {v.strip().lower() for v in self.false_values}
        if not t or not f:
            raise ValueError("true_values and false_values must not be empty")
        if t & f:
            raise ValueError(f"{sorted(t & f)} listed as both true and false")
        return self

    def parse(self, text: str) -> float | None:
        """1.0 / 0.0 for an accepted spelling, None for anything else."""
        v = text.strip().lower()
        if v in {x.strip().lower() for x in self.true_values}:
            return 1.0
        if v in {x.strip().lower() for x in self.false_values}:
            return 0.0
        return None


class TextFeature(_Strict):
    """Free text through TF-IDF (word n-grams, at most max_features terms) inside the ONNX
    graph; serving passes the raw string. Both sides first apply features.normalise_text
    (lower case, words of 2+ letters or digits, single spaces), so the graph's tokenizer and
    scikit-learn's see the same words. Missing text (when nullable) is the empty text."""

    name: str
    type: Literal["text"] = "text"
    nullable: bool = False
    max_features: int = Field(default=500, ge=1, le=100_000)
    ngrams: int = Field(default=1, ge=1, le=3, description="word n-grams from 1 to this")


class DatetimeFeature(_Strict):
    """An ISO 8601 date or timestamp ("2024-02-29", "2024-02-29T13:05:00+01:00"), or `format`
    (strptime) when given. The graph's input is days since 1970-01-01 UTC, fractional (the
    time of day counts; an offset is converted to UTC, a naive time is taken as UTC), computed
    by one function (features.parse_days) at training and at request time; the graph expands
    it into `parts`."""

    name: str
    type: Literal["datetime"] = "datetime"
    nullable: bool = False
    format: str | None = None
    # What the model learns from: the days (a trend), per cycle the sine and cosine of the
    # position in the year / week / day, and integer calendar parts: year, month (1-12),
    # weekday (Monday 0) and hour (0-23, UTC; the time rounded to 5 minutes) -- all in
    # training.date_cycles and in the ONNX graph alike
    parts: list[DatePart] = Field(default_factory=lambda: list(DATE_PARTS))

    @field_validator("parts")
    @classmethod
    def _parts(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError("parts must be a non-empty list of distinct parts")
        return v


# serving dispatches on spec_light's kinds: a ModelSpec feature is one of them too
for _model, _kind in ((NumericFeature, spec_light.NumericFeature),
                      (CategoricalFeature, spec_light.CategoricalFeature),
                      (BooleanFeature, spec_light.BooleanFeature),
                      (TextFeature, spec_light.TextFeature),
                      (DatetimeFeature, spec_light.DatetimeFeature)):
    _kind.register(_model)

Feature = Annotated[
    NumericFeature | CategoricalFeature | BooleanFeature | TextFeature | DatetimeFeature,
    Field(discriminator="type")]
ROLES = ("feature", "id", "ignore")

CLASSIFIERS = {"logistic_regression", "random_forest", "gradient_boosting", "hist_gradient_boosting"}
REGRESSORS = {
    "linear_regression",
    "ridge",
    "random_forest_regressor",
    "gradient_boosting_regressor",
}


class Estimator(_Strict):
    kind: EstimatorKind = "logistic_regression"
    params: dict[str, Any] = Field(default_factory=dict)


class ValidationRules(_Strict):
    min_rows: int = Field(default=100, ge=1)
    max_null_fraction: float = Field(default=0.2, ge=0.0, le=1.0)
    min_class_fraction: float = Field(
        default=0.01, ge=0.0, le=0.5, description="Each class must have at least this share."
    )
    unknown_columns: Literal["ignore", "reject"] = "ignore"
    max_examples: int = Field(default=5, ge=1, le=100)


DEFAULT_MIN_GAIN = 0.001


class PromotionPolicy(_Strict):
    """A candidate replaces the champion only with a real gain: strictly above min_gain (a tie
    never wins), and, with `significance: k`, above k standard deviations of the candidate's
    metric over `cv_folds` cross-validation folds (the noise of this data and estimator)."""

    metric: str = "roc_auc"
    minimum: float | None = None
    # negative: the candidate may be worse by that much (an explicit opt-in, ties included)
    min_gain: float = DEFAULT_MIN_GAIN
    significance: float | None = Field(default=None, gt=0.0)
    cv_folds: int = Field(default=5, ge=2, le=20)
    higher_is_better: bool | None = None  # inferred from the metric when None
    require_approval: bool = False
    parity_tolerance: float = Field(default=1e-4, gt=0)


class MonitoringPolicy(_Strict):
    drift_method: Literal["psi", "ks", "wasserstein", "jensen_shannon", "chi2"] = "psi"
    threshold: float = Field(default=0.2, gt=0)
    categorical_method: Literal["psi", "chi2", "jensen_shannon"] = "psi"
    numeric_method: Literal["psi", "ks", "wasserstein"] = "psi"
    min_rows: int = Field(default=50, ge=1)
    # serving health: an alert when more than this share of a window's requests got a 5xx
    max_5xx_rate: float = Field(default=0.01, ge=0, le=1)
    window_hours: float = Field(default=24.0, gt=0)
    max_missing_rate_increase: float = Field(default=0.1, ge=0)
    max_out_of_range_rate: float = Field(default=0.05, ge=0)
    # text: an alert when the share of words the model does not know (out of its TF-IDF
    # vocabulary) rises above the training holdout's by more than this, or when the shares of
    # the training's top words move by more than max_top_term_shift (Jensen-Shannon, bits)
    max_oov_rate_increase: float = Field(default=0.1, ge=0, le=1)
    max_top_term_shift: float = Field(default=0.1, gt=0, le=1)
    # datetime: a date is out of range outside the training's [min, max] widened on each side
    # by date_margin times its span, or later than the monitor's clock + max_future_days
    date_margin: float = Field(default=0.1, ge=0)
    max_future_days: float = Field(default=1.0, ge=0)
    quality_metric: str | None = None
    quality_minimum: float | None = None
    retrain_on_drift: bool = False
    retrain_cooldown_hours: float = Field(default=24.0, ge=0)


class ServingPolicy(_Strict):
    """How inference requests are checked. Requests are strict by default: a field that is not
    a feature of the model is a 400 naming it (a typo must never be silently dropped) unless
    `unknown_fields: ignore`."""

    unknown_fields: Literal["reject", "ignore"] = "reject"


_DEFAULT_SERVING = ServingPolicy().model_dump(mode="json")
_DEFAULT_5XX = MonitoringPolicy().max_5xx_rate
# monitoring options added later: a spec that does not set them hashes as before
_ADDED_MONITORING = {k: getattr(MonitoringPolicy(), k) for k in (
    "max_oov_rate_increase", "max_top_term_shift", "date_margin", "max_future_days")}


class TrainingPolicy(_Strict):
    """Where training runs: auto routes by the job's size (core/sizing.py); function and batch
    force one engine. Where a model trains does not change it: not part of spec_hash."""

    engine: Literal["auto", "function", "batch"] = "auto"


LOWER_IS_BETTER = {"log_loss", "rmse", "mae"}
CLASSIFICATION_METRICS = {"accuracy", "f1", "f1_macro", "roc_auc", "log_loss", "precision",
                          "recall"}
REGRESSION_METRICS = {"rmse", "mae", "r2"}
# promotion.metric when the spec does not name one: a default that fits the task
DEFAULT_METRIC = {"binary_classification": "roc_auc", "multiclass_classification": "f1_macro",
                  "regression": "rmse"}


class ModelSpec(spec_light.SpecViews, _Strict):
    name: str
    task: Task
    target: str
    # Binary tasks: the class F1 (and the gates, reports, console) are about. Required when the
    # labels are not 0/1 or false/true: validation refuses to guess and lists the values found.
    positive_class: str | int | bool | None = None
    features: list[Feature] = Field(min_length=1, max_length=MAX_FEATURES)
    estimator: Estimator = Field(default_factory=Estimator)
    validation: ValidationRules = Field(default_factory=ValidationRules)
    promotion: PromotionPolicy = Field(default_factory=PromotionPolicy)
    monitoring: MonitoringPolicy = Field(default_factory=MonitoringPolicy)
    # Experiments: several candidates per upload; None trains `estimator` alone (as before).
    search: Search | None = None
    serving: ServingPolicy = Field(default_factory=ServingPolicy)
    training: TrainingPolicy = Field(default_factory=TrainingPolicy)
    # Columns that are not features: `role: id` entries (carried into captures so labels and
    # audits can join on them) and `role: ignore` entries, moved here from `features`.
    ids: list[str] = Field(default_factory=list)
    ignored: list[str] = Field(default_factory=list)
    test_size: float = Field(default=0.2, gt=0.0, lt=0.9)
    seed: int = 42
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _roles(cls, data: Any) -> Any:
        """`- {name: customer_id, role: id}` in features: not a feature, an id column."""
        if not isinstance(data, dict) or not isinstance(data.get("features"), list):
            return data
        if any(data.get(k) is not None and not isinstance(data[k], list)
               for k in ("ids", "ignored")):
            return data  # `ids: true`, `ids: customer_id`: pydantic names the field and type
        features, ids, ignored = [], list(data.get("ids") or []), list(data.get("ignored") or [])
        for i, f in enumerate(data["features"]):
            if not isinstance(f, dict) or "role" not in f:
                features.append(f)
                continue
            role, rest = f["role"], {k: v for k, v in f.items() if k != "role"}
            if role not in ROLES:
                raise ValueError(f"features.{i}.role: {role!r} is not one of {list(ROLES)}")
            if role == "feature":
                features.append(rest)
            elif not isinstance(rest.get("name"), str):
                raise ValueError(f"features.{i}.name: a role: {role} entry needs a name")
            else:
                (ids if role == "id" else ignored).append(rest["name"])
        return {**data, "features": features, "ids": ids, "ignored": ignored}

    @model_validator(mode="before")
    @classmethod
    def _default_metric(cls, data: Any) -> Any:
        """No promotion.metric: the task's (a regression spec without a promotion block used
        to be refused for roc_auc)."""
        if not isinstance(data, dict) or not isinstance(data.get("task"), str) \
                or data["task"] not in DEFAULT_METRIC:  # `task: [..]`: pydantic's error
            return data
        promotion = data.get("promotion")
        if promotion is None:
            promotion = {}
        if isinstance(promotion, dict) and "metric" not in promotion:
            data = {**data, "promotion": {**promotion, "metric": DEFAULT_METRIC[data["task"]]}}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not layout.NAME_RE.fullmatch(v):
            raise ValueError("must be 1-63 lowercase letters, digits, '-' or '_'")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate feature names: {dupes}")
        if self.target in names:
            raise ValueError(f"target {self.target!r} is also listed as a feature")
        if self.positive_class is not None and self.task is not Task.binary:
            raise ValueError(f"positive_class is for binary_classification, not {self.task.value}")
        both = sorted((set(names) | {self.target}) & (set(self.ids) | set(self.ignored)))
        if both:
            raise ValueError(f"{both}: a column with role id or ignore cannot also be the "
                             "target or a feature")
        kind = self.estimator.kind
        if self.task.is_classification and kind not in CLASSIFIERS:
            raise ValueError(
                f"estimator.kind {kind!r} is a regressor but task is {self.task.value}"
            )
        if not self.task.is_classification and kind not in REGRESSORS:
            raise ValueError(f"estimator.kind {kind!r} is a classifier but task is regression")
        allowed = CLASSIFICATION_METRICS if self.task.is_classification else REGRESSION_METRICS
        if self.promotion.metric not in allowed:
            raise ValueError(
                f"promotion.metric {self.promotion.metric!r} is not one of {sorted(allowed)}"
            )
        if self.task is not Task.binary and self.promotion.metric in ("precision", "recall"):
            raise ValueError(f"promotion.metric {self.promotion.metric!r} is for binary tasks "
                             "(of the positive_class)")
        if self.task is Task.multiclass and self.promotion.metric == "roc_auc":
            pass  # computed one-vs-rest, weighted
        if self.search is not None:
            self._check_search(self.search, allowed)
        return self

    def _check_search(self, search: Search, allowed: set[str]) -> None:
        kinds = CLASSIFIERS if self.task.is_classification else REGRESSORS
        for i, c in enumerate(search.candidates):
            if c.kind not in kinds:
                raise ValueError(f"search.candidates.{i}.kind {c.kind!r} does not fit task "
                                 f"{self.task.value}: use one of {sorted(kinds)}")
        if search.metric is not None and search.metric not in allowed:
            raise ValueError(f"search.metric {search.metric!r} is not one of {sorted(allowed)}")

    # -- helpers (feature views: spec_light.SpecViews) ----------------------------------
    def higher_is_better(self, metric: str | None = None) -> bool:
        metric = metric or self.promotion.metric
        if metric == self.promotion.metric and self.promotion.higher_is_better is not None:
            return self.promotion.higher_is_better
        return metric not in LOWER_IS_BETTER

    def _canonical(self, *, for_hash: bool = False) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        # fields added later hash as before when not set (the same spec keeps its run key)
        for f in data["features"]:
            if f.get("default") is None:
                f.pop("default", None)
        if data["monitoring"].get("max_5xx_rate") == _DEFAULT_5XX:
            data["monitoring"].pop("max_5xx_rate")
        for key, default in _ADDED_MONITORING.items():
            if data["monitoring"].get(key) == default:
                data["monitoring"].pop(key)
        if data.get("search") is None:
            # a spec without a search hashes exactly as it did before searches existed
            data.pop("search", None)
        if data.get("positive_class") is None:  # specs without one hash as before
            data.pop("positive_class", None)
        promotion = data.get("promotion") or {}
        for name, default in (("significance", None), ("cv_folds", 5)):  # hash as before
            if promotion.get(name) == default:
                promotion.pop(name, None)
        if data.get("serving") == _DEFAULT_SERVING:  # likewise the default serving policy
            data.pop("serving", None)
        for key in ("ids", "ignored"):  # likewise a spec without roles
            if not data.get(key):
                data.pop(key, None)
        for f in data.get("features", []):  # and categorical features without the tail options
            if f.get("type") == "categorical":
                for key in _TAIL_OPTIONS:
                    if f.get(key) is None:
                        f.pop(key, None)
        # Where a model trains does not change it: never in the hash (the same data and spec
        # give the same run key whichever engine trains it), and absent when not set.
        if for_hash or self.training == TrainingPolicy():
            data.pop("training", None)
        return data

    def canonical_json(self) -> str:
        return json.dumps(self._canonical(), sort_keys=True, separators=(",", ":"))

    def meaning_hash(self) -> str:
        """What the spec means for the model it trains: the spec hash without the description
        and the monitoring policy (applied live from the current spec, never frozen in a
        version). The same data with the same meaning makes no new version."""
        data = self._canonical(for_hash=True)
        data.pop("description", None)
        data.pop("monitoring", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True,
                                         separators=(",", ":")).encode()).hexdigest()

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(self._canonical(for_hash=True), sort_keys=True,
                                         separators=(",", ":")).encode()).hexdigest()


YAML_BOOLEAN_HINT = ("YAML reads unquoted yes/no, on/off, y/n and true/false as booleans: "
                     "quote the value (\"yes\")")


def _format_pydantic(err: PydanticValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
        msg = f"{loc or 'spec'}: {e['msg']}"
        if isinstance(e.get("input"), bool) and e["type"].startswith("string"):
            msg += f" (got {e['input']!r}: {YAML_BOOLEAN_HINT})"
        parts.append(msg)
    return "; ".join(parts)


def _parse_error(exc: Exception, source: str) -> str:
    """A YAML/JSON syntax error with the line and column people can go to."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        return (f"{source}: not valid YAML at line {mark.line + 1}, column {mark.column + 1}: "
                f"{problem}" + (f" ({context})" if context else ""))
    if isinstance(exc, json.JSONDecodeError):
        return (f"{source}: not valid JSON at line {exc.lineno}, column {exc.colno}: "
                f"{exc.msg}")
    return f"{source}: not valid YAML/JSON: {str(exc).splitlines()[0]}"


def parse_spec(data: dict[str, Any] | ModelSpec) -> ModelSpec:
    if isinstance(data, ModelSpec):
        return data
    if not isinstance(data, dict):
        raise SpecError("spec must be a mapping (YAML/JSON object) at the top level", field="spec")
    try:
        return ModelSpec.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]["loc"]
        raise SpecError(
            f"invalid spec: {_format_pydantic(exc)}", field=".".join(map(str, first)) or None
        ) from None


def load_spec_bytes(raw: bytes, *, source: str = "spec") -> ModelSpec:
    """Parse YAML or JSON safely (yaml.safe_load only; size-limited)."""
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{source}: spec is larger than {MAX_SPEC_BYTES} bytes", field="spec")
    try:
        text = raw.decode("utf-8-sig", errors="strict") if raw else ""
    except UnicodeDecodeError as exc:
        raise SpecError(f"{source}: not valid UTF-8 (byte {exc.start}): save the spec as UTF-8",
                        field="spec") from None
    stripped = text.lstrip()
    try:
        if stripped.startswith("{"):
            data = json.loads(text, object_pairs_hook=_unique_keys)
        else:
            try:
                import yaml
            except ImportError as exc:  # serving-only installs read JSON specs
                raise SpecError(f"{source}: YAML specs need PyYAML (mlops-kit[train])") from exc
            data = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 - a SafeLoader
    except _DuplicateKey as exc:
        raise SpecError(f"{source}: key {str(exc)[:60]!r} appears twice in one mapping (which "
                        "one counts would be a guess)", field="spec") from None
    except SpecError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser error is a user error here
        raise SpecError(_parse_error(exc, source)) from None
    _check_expanded_size(data, source)
    return parse_spec(data)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


_LOADER: Any = None


def _unique_key_loader() -> Any:
    """yaml.SafeLoader refusing a key given twice in one mapping (it keeps the last one
    silently). Keys brought in by a merge (`<<: *base`) may still be overridden."""
    global _LOADER
    if _LOADER is None:
        import yaml

        class UniqueKeyLoader(yaml.SafeLoader):
            def construct_mapping(self, node, deep=False):
                if isinstance(node, yaml.MappingNode):
                    seen: set = set()
                    for key_node, _ in node.value:
                        if key_node.tag == "tag:yaml.org,2002:merge":
                            continue
                        key = self.construct_object(key_node, deep=True)
                        try:
                            duplicate = key in seen
                        except TypeError:  # an unhashable key: the base class says so
                            continue
                        if duplicate:
                            raise _DuplicateKey(str(key))
                        seen.add(key)
                return super().construct_mapping(node, deep=deep)

        _LOADER = UniqueKeyLoader
    return _LOADER


def _check_expanded_size(data: Any, source: str) -> None:
    """Count nodes as the parsed document would expand (aliases counted at every use), and stop
    early: a 1 KB YAML file with nested aliases must not become gigabytes when hashed."""
    stack, seen = [data], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_SPEC_NODES:
            raise SpecError(f"{source}: spec expands to more than {MAX_SPEC_NODES} values "
                            "(YAML aliases?)", field="spec")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
