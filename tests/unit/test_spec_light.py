"""spec_light.read_spec (serving's reading of a version's spec.json, no pydantic) agrees with
ModelSpec (core/spec.py) on what serving reads: for any spec, valid or not, either both refuse
it with the same SpecError, or both read the same name, task, target, features (every field,
as model_dump gives them; the same kinds), ids, ignored columns and serving policy."""

from __future__ import annotations

import copy
import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_kit.core import spec_light
from mlops_kit.core.serving.service import ModelService
from mlops_kit.core.spec import ModelSpec, parse_spec
from mlops_kit.core.spec_light import ServingSpec
from mlops_kit.core.spec_light import read_spec as _read_spec
from mlops_kit.core.synthetic import CHURN_SPEC
from mlops_kit.errors import MlopsKitError, SpecError
from tests.support import examples, feature_records

KINDS = (spec_light.NumericFeature, spec_light.CategoricalFeature, spec_light.BooleanFeature,
         spec_light.TextFeature, spec_light.DatetimeFeature)


# the blocks serving never reads: only their being objects is spec_light's to check
UNREAD_BLOCKS = ("estimator", "validation", "promotion", "monitoring", "search", "training")


def read_spec(data):
    return _read_spec(data, parse_spec)


def _outcome(read, data):
    try:
        return read(copy.deepcopy(data))
    except SpecError as exc:
        return exc


def assert_agree(data) -> ServingSpec | ModelSpec | SpecError:
    light, full = _outcome(read_spec, data), _outcome(parse_spec, data)
    if isinstance(full, SpecError):
        if not isinstance(light, SpecError) and str(full).startswith(tuple(
                f"invalid spec: {b}." for b in UNREAD_BLOCKS)):
            return light  # on purpose (test_the_blocks_serving_does_not_read_are_not_its_to_refuse)
        assert isinstance(light, SpecError), (light, full)
        assert (str(light), light.field) == (str(full), full.field)
        return light
    assert not isinstance(light, SpecError), light
    assert (light.name, light.task, light.target) == (full.name, full.task, full.target)
    assert light.task is full.task
    assert light.feature_names == full.feature_names
    assert [f.model_dump(mode="json") for f in light.features] \
        == [f.model_dump(mode="json") for f in full.features]
    for a, b in zip(light.features, full.features, strict=True):
        assert [isinstance(a, k) for k in KINDS] == [isinstance(b, k) for k in KINDS]
        if isinstance(a, spec_light.BooleanFeature):
            for text in ("yes", " NO ", "1", "t", "maybe", ""):
                assert a.parse(text) == b.parse(text)
    assert (light.ids, light.ignored) == (full.ids, full.ignored)
    assert light.serving.unknown_fields == full.serving.unknown_fields
    for prop in ("numeric", "categorical", "booleans", "texts", "datetimes"):
        assert [f.name for f in getattr(light, prop)] == [f.name for f in getattr(full, prop)]
    assert light.known_columns == full.known_columns
    return light


# values a stored spec holds, and the odd ones only pydantic's rules decide
ODD = st.sampled_from([None, True, False, 0, 1, 2, -1, 1.5, -0.5, math.nan, math.inf, -math.inf,
                       "", "x", "1", "true", "numeric", "error", [], ["a"], ["a", "a"],
                       ["days"], {}, {"unknown_fields": "ignore"}, 10**400])
FLOAT = st.one_of(st.integers(-100, 100), st.floats(-1e3, 1e3, allow_nan=False))


@st.composite
def valid_feature(draw, name: str) -> dict:
    kind = draw(st.sampled_from(["numeric", "categorical", "boolean", "text", "datetime"]))
    f: dict = {"name": name, "type": kind}
    opt = draw(st.lists(st.booleans(), min_size=6, max_size=6))
    if opt[0]:
        f["nullable"] = draw(st.booleans())
    if kind == "numeric":
        lo, hi = sorted(draw(st.lists(FLOAT, min_size=2, max_size=2)))
        if opt[1]:
            f["min"] = lo
        if opt[2]:
            f["max"] = hi
        if opt[3]:
            f["default"] = draw(st.sampled_from([lo, hi]))
    elif kind == "categorical":
        cats = draw(st.lists(st.text(max_size=4), min_size=1, max_size=4, unique=True))
        if opt[1]:
            f["categories"] = cats
        if opt[2]:
            f["default"] = cats[0]
        if opt[3]:
            f["max_categories"] = draw(st.integers(2, 50))
        if opt[4]:
            f["min_frequency"] = draw(st.floats(0.001, 100))
        if opt[5]:
            f["unknown"] = "error" if opt[1] and draw(st.booleans()) else "other"
    elif kind == "boolean":
        if opt[1]:
            f["true_values"] = draw(st.lists(st.sampled_from(["yes", "si", "Y"]), min_size=1))
        if opt[2]:
            f["false_values"] = draw(st.lists(st.sampled_from(["no", "non", "N "]), min_size=1))
    elif kind == "text":
        if opt[1]:
            f["max_features"] = draw(st.integers(1, 100_000))
        if opt[2]:
            f["ngrams"] = draw(st.integers(1, 3))
    else:
        if opt[1]:
            f["format"] = "%Y-%m-%d"
        if opt[2]:
            f["parts"] = draw(st.lists(st.sampled_from(["days", "year", "month", "hour",
                                                        "week_cycle"]), min_size=1,
                                       unique=True))
    return f


@st.composite
def specs(draw) -> dict:
    """A valid spec (as users write them: some fields left out, roles), then 0-2 of its
    fields broken, removed or added at random."""
    task = draw(st.sampled_from(["binary_classification", "multiclass_classification",
                                 "regression"]))
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "plan", "id", "x"]),
                          min_size=1, max_size=6, unique=True))
    features = [draw(valid_feature(n)) for n in names]
    spec: dict = {"name": draw(st.sampled_from(["churn", "a-b_1", "m" * 63])), "task": task,
                  "target": "target", "features": features,
                  # the blocks serving does not read, valid for the task
                  "estimator": {"kind": "ridge" if task == "regression"
                                else "logistic_regression"}}
    if draw(st.booleans()):
        spec["serving"] = {"unknown_fields": draw(st.sampled_from(["reject", "ignore"]))}
    if draw(st.booleans()):
        spec["features"] = [*features, {"name": "customer_id", "role": "id"},
                            {"name": "note", "role": "ignore"}]
    if task == "binary_classification" and draw(st.booleans()):
        spec["positive_class"] = draw(st.sampled_from(["yes", 1, True]))
    for _ in range(draw(st.integers(0, 2))):
        listed = [f for f in spec.get("features") or [] if isinstance(f, dict)] \
            if isinstance(spec.get("features"), list) else []
        where = draw(st.sampled_from(["top", "feature"] if listed else ["top"]))
        target = spec if where == "top" else draw(st.sampled_from(listed))
        keys = (["name", "task", "target", "features", "ids", "ignored", "serving",
                 "positive_class", "monitoring", "surprise"] if where == "top" else
                ["name", "type", "role", "min", "max", "default", "nullable", "categories",
                 "max_categories", "min_frequency", "unknown", "true_values", "false_values",
                 "max_features", "ngrams", "format", "parts", "extra"])
        key = draw(st.sampled_from(keys))
        if key in target and draw(st.integers(0, 3)) == 0:
            del target[key]
        else:
            target[key] = draw(ODD)
    return spec


@settings(max_examples=examples(1500))
@given(specs())
def test_any_spec_reads_as_model_spec_reads_it(data):
    assert_agree(data)


STORED_FEATURE = st.one_of(
    st.builds(lambda lo, span, nullable: {"type": "numeric", "min": lo, "max": lo + span,
                                          "nullable": nullable},
              st.integers(-100, 100), st.integers(0, 100), st.booleans()),
    st.builds(lambda cats, unknown: {"type": "categorical", "categories": cats,
                                     "unknown": unknown},
              st.lists(st.text(max_size=5), min_size=1, max_size=4, unique=True),
              st.sampled_from([None, "other", "error"])),
    st.just({"type": "categorical", "max_categories": 5, "min_frequency": 0.01}),
    st.just({"type": "boolean", "true_values": ["si"], "false_values": ["no"]}),
    st.just({"type": "text", "max_features": 50, "ngrams": 2}),
    st.just({"type": "datetime", "parts": ["days", "month"], "format": "%Y-%m-%d"}),
)


@settings(max_examples=examples(300))
@given(st.lists(STORED_FEATURE, min_size=1, max_size=6),
       st.sampled_from(["reject", "ignore"]), st.booleans())
def test_a_stored_spec_is_read_without_pydantic(features, unknown_fields, with_ids):
    """What training stores (ModelSpec.canonical_json) is read here, never handed over."""
    data = {**CHURN_SPEC, "features": [{**f, "name": f"f{i}"} for i, f in enumerate(features)],
            "serving": {"unknown_fields": unknown_fields}}
    if with_ids:
        data["features"].append({"name": "customer_id", "role": "id"})
    stored = json.loads(parse_spec(data).canonical_json())
    assert type(read_spec(stored)) is ServingSpec
    assert_agree(stored)


def test_a_bad_spec_is_model_specs_error_never_a_traceback():
    for data in (None, [], "spec", {"name": "churn"}, {**CHURN_SPEC, "features": []},
                 {**CHURN_SPEC, "task": ["regression"]}, {**CHURN_SPEC, "ids": True},
                 {**CHURN_SPEC, "features": [{"name": "a", "type": "numeric", "min": 2,
                                              "max": 1}]}):
        out = assert_agree(data)
        assert isinstance(out, SpecError) and str(out).startswith(("invalid spec", "spec must"))


def test_the_blocks_serving_does_not_read_are_not_its_to_refuse():
    """A departure from ModelSpec, on purpose: a stored spec whose monitoring (or promotion,
    validation...) block breaks a rule is still served; monitoring and training read it with
    ModelSpec and refuse it there."""
    data = {**CHURN_SPEC, "monitoring": {"threshold": -1}}
    assert isinstance(_outcome(parse_spec, data), SpecError)
    assert type(read_spec(data)) is ServingSpec


def test_the_service_answers_the_same_with_either_spec(trained):
    """The serve function's service (spec_light) and ModelSpec's: the same metadata, the same
    predictions, the same errors."""
    store, registry = trained.ctx.store, trained.ctx.registry
    light = ModelService(store, registry, read_spec=read_spec)
    full = ModelService(store, registry)
    a, b = light.load_version("churn", 1), full.load_version("churn", 1)
    assert type(a.spec) is ServingSpec and isinstance(b.spec, ModelSpec)
    assert light.metadata("churn") == full.metadata("churn")
    records = feature_records(20, seed=5)
    for batch in (records[:1], records, [{**records[0], "age": "old"}],
                  [{**records[0], "plan": "platinum"}], [{**records[0], "extra": 1}],
                  [{k: v for k, v in records[0].items() if k != "region"}]):
        out = []
        for p in (a, b):
            try:
                out.append(p.predict(batch))
            except MlopsKitError as exc:
                out.append((type(exc), exc.message, exc.field))
        assert repr(out[0]) == repr(out[1])
