"""Issue 28: the compiled V1 decoder (msgspec, per spec) is only ever faster, never laxer:
whatever body it accepts, today's exact path (parse_json_body + records_to_inputs) accepts too
and encodes identically; anything else it declines, and the exact path answers -- with its own
error messages, unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_kit.core.features import records_to_inputs
from mlops_kit.core.serving.decoder import V1Decoder
from mlops_kit.core.serving.http_api import DECODE_MIN_BYTES, HttpApi, parse_json_body
from mlops_kit.core.serving.predictor import MAX_BATCH
from mlops_kit.core.spec import parse_spec
from mlops_kit.core.synthetic import CHURN_SPEC
from tests.support import examples, feature_records, store_captures

SPEC = parse_spec({**CHURN_SPEC, "features": [
    *CHURN_SPEC["features"][:2],
    {**CHURN_SPEC["features"][2], "nullable": True},
    {**CHURN_SPEC["features"][3], "nullable": False},
    {**CHURN_SPEC["features"][4], "nullable": True},  # listed categories, nullable
    {"name": "region", "type": "categorical", "nullable": True},  # any category
    {**CHURN_SPEC["features"][6], "nullable": False},  # listed, not nullable
]})
NAMES = SPEC.feature_names
DECODER = V1Decoder.for_spec(SPEC, MAX_BATCH)
GOOD = feature_records(1)[0]
values = (st.none() | st.booleans() | st.integers(-(10**40), 10**40)
          | st.sampled_from([2**53 + 1, 2**64 + 1, 3.3e38, -3.5e38, 240, 240.0000001, 18, 17.99,
                             -0.0, 1e-320])
          | st.floats(allow_nan=True, allow_infinity=True)
          | st.text(max_size=5) | st.sampled_from(["basic", "north", "card", "", "x" * 257,
                                                   "x" * 256, "12", "é\u2028"])
          | st.lists(st.integers(), max_size=2))
records = st.builds(lambda patch, drop, extra: {
    **{k: v for k, v in {**GOOD, **patch}.items() if k not in drop}, **extra},
    st.dictionaries(st.sampled_from(NAMES), values, max_size=3),
    st.sets(st.sampled_from(NAMES), max_size=1),
    st.dictionaries(st.sampled_from(["extra", "Age"]), values, max_size=1))
bodies = st.builds(
    lambda recs, top: json.dumps({"instances": recs, **top}).encode(),
    st.lists(records | st.lists(values, max_size=7), min_size=0, max_size=6),
    st.dictionaries(st.sampled_from(["parameters", "instances2"]), values, max_size=1))


def _same(fast: dict, exact: dict) -> None:
    assert list(fast) == list(exact)
    for name in exact:
        a, b = fast[name], exact[name]
        assert a.dtype == b.dtype and a.shape == b.shape, name
        if a.dtype == object:
            assert a.tolist() == b.tolist(), name
        else:
            assert np.array_equal(a, b, equal_nan=True), name


@settings(max_examples=examples(800), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_decoded_feed_equals_the_exact_path_or_declines(body):
    assert DECODER is not None
    fast = DECODER.feed(body)
    if fast is None:
        return
    instances = parse_json_body(body)["instances"]  # must not raise: the decoder accepted
    assert isinstance(instances, list) and 0 < len(instances) <= MAX_BATCH
    assert all(isinstance(r, dict) for r in instances)
    _same(fast, records_to_inputs(SPEC, instances))



FEATS = CHURN_SPEC["features"]
LISTED = parse_spec({**CHURN_SPEC, "features": [  # every categorical lists its categories
    *FEATS[:4], {**FEATS[4], "nullable": True}, FEATS[5], {**FEATS[6], "nullable": True}]})
LISTED_DECODER = V1Decoder.for_spec(LISTED, MAX_BATCH)
CATEGORIES = [c for f in LISTED.categorical for c in f.categories or ()]


@settings(max_examples=examples(400), deadline=None, derandomize=True, database=None)
@given(st.dictionaries(st.sampled_from(LISTED.feature_names),
                       values | st.sampled_from(CATEGORIES), max_size=4))
def test_one_record_of_listed_categories_equals_the_exact_path_or_declines(patch):
    """One record of a spec whose categoricals all list their categories: each value's input
    is a shared read-only array built with the decoder, equal to the exact path's."""
    assert LISTED_DECODER is not None
    rec = {**GOOD, **patch}
    fast = LISTED_DECODER.feed(json.dumps({"instances": [rec]}).encode())
    if fast is None:
        return
    _same(fast, records_to_inputs(LISTED, [rec]))
    again = LISTED_DECODER.feed(json.dumps({"instances": [rec]}).encode())
    assert again is not None
    for f in LISTED.categorical:
        assert fast[f.name] is again[f.name] and not fast[f.name].flags.writeable

def test_the_common_bodies_are_decoded_and_doubts_declined():
    assert DECODER is not None
    for n in (1, 7, 300):
        recs = [{**r, "payment": r["payment"] or "card"} for r in feature_records(n, seed=n)]
        body = json.dumps({"instances": recs}).encode()
        fast = DECODER.feed(body)
        assert fast is not None, n
        _same(fast, records_to_inputs(SPEC, parse_json_body(body)["instances"]))
    missing = {**GOOD, "plan": None, "region": ""}  # nullable categoricals: the missing value
    fast = DECODER.feed(json.dumps({"instances": [missing]}).encode())
    assert fast is not None
    _same(fast, records_to_inputs(SPEC, [missing]))
    declined = [
        {"instances": [{**GOOD, "age": True}]}, {"instances": [{**GOOD, "extra": 1}]},
        {"instances": [{k: v for k, v in GOOD.items() if k != "age"}]},
        {"instances": [{**GOOD, "payment": "cash?"}]}, {"instances": [{**GOOD, "payment": ""}]},
        {"instances": [{**GOOD, "age": None}]}, {"instances": [list(GOOD.values())]},
        {"instances": []}, {"instances": [GOOD], "parameters": {}}, {"inputs": [GOOD]},
        {"instances": [{**GOOD, "age": 10**400}]},
    ]
    for body in declined:
        assert DECODER.feed(json.dumps(body).encode()) is None, body
    for raw in (b"", b"[]", b"{", b'{"instances": [' + json.dumps(GOOD).encode() + b"]} x",
                b'\xff{"instances": []}', (b'{"instances": [{"a": "\\ud800"}]}')):
        assert DECODER.feed(raw) is None, raw
    dup = (b'{"instances": [' + json.dumps(GOOD).encode()[:-1] + b', "age": 61}]}')
    fast = DECODER.feed(dup)  # a duplicate key: the last one wins, as in orjson
    assert fast is not None
    _same(fast, records_to_inputs(SPEC, parse_json_body(dup)["instances"]))
    assert fast["age"].tolist() == [[61.0]]


def test_one_record_is_fed_in_feature_order_with_missing_values_encoded():
    """The single-record branch (two arrays, not one per feature) keeps the spec's feature
    order when numeric and categorical features interleave, and encodes None as the exact
    path does (NaN, the missing category)."""
    feats = CHURN_SPEC["features"]
    spec = parse_spec({**CHURN_SPEC, "features": [
        {**feats[4], "nullable": True}, {**feats[0], "nullable": True}, feats[5], *feats[1:4],
        feats[6]]})
    decoder = V1Decoder.for_spec(spec, MAX_BATCH)
    assert decoder is not None
    for rec in (GOOD, {**GOOD, "plan": None, "tenure_months": None}):
        fast = decoder.feed(json.dumps({"instances": [rec]}).encode())
        assert fast is not None and list(fast) == spec.feature_names
        _same(fast, records_to_inputs(spec, [rec]))


def test_specs_the_decoder_leaves_to_the_exact_path():
    with_default = {**CHURN_SPEC, "features": [{**CHURN_SPEC["features"][0], "default": 1.0},
                                               *CHURN_SPEC["features"][1:]]}
    with_bool = {**CHURN_SPEC, "features": [*CHURN_SPEC["features"],
                                            {"name": "paperless", "type": "boolean"}]}
    for spec in (with_default, with_bool):
        assert V1Decoder.for_spec(parse_spec(spec), MAX_BATCH) is None


BAD_BODIES = [
    b"not json", b"[]", b'{"instances": []}', b'{"instances": [{"age": 1}]}',
    json.dumps({"instances": [{**GOOD, "age": -5}]}).encode(),
    json.dumps({"instances": [{**GOOD, "plan": "gold"}]}).encode(),
    json.dumps({"instances": [{**GOOD, "extra": 1}]}).encode(),
    json.dumps({"instances": [list(GOOD.values())[:2]]}).encode(),
    json.dumps({"nope": 1}).encode(),
]


@pytest.mark.parametrize("body", [
    *BAD_BODIES,
    json.dumps({"instances": feature_records(1)}).encode(),
    json.dumps({"instances": feature_records(40, seed=4)}).encode(),
    json.dumps({"instances": feature_records(20), "parameters": {"x": 1}}).encode(),
    json.dumps({"instances": [*feature_records(20)[:-1], {**GOOD, "age": 3}]}).encode(),
])
def test_http_answers_are_unchanged_by_the_decoder(trained, monkeypatch, body):
    """The same body, with and without the decoder: the same status and JSON (predictions,
    or the error message naming the field)."""
    service = trained.service(capture=False)
    service.refresh_seconds = 3600
    api = HttpApi(service, authorize=None)
    path = "/v1/models/churn:predict"

    def answer():
        resp = api.handle("POST", path, {"content-type": "application/json"}, body,
                          request_id="r-1")
        out = json.loads(resp.payload())
        out.pop("request_id", None)
        return resp.status, out

    api.handle("POST", path, {}, json.dumps({"instances": [GOOD]}).encode())  # routes cached
    taken = []
    real = service.v1_feed
    monkeypatch.setattr(service, "v1_feed", lambda m, b: taken.append(r := real(m, b)) or r)
    with_decoder = answer()
    monkeypatch.setattr(service, "v1_feed", lambda m, b: None)
    assert answer() == with_decoder
    if len(body) < DECODE_MIN_BYTES:  # a few records: the exact path only, no decoder built
        assert taken == [] and service._routes["churn"][1]._v1_decoder is False
    else:
        assert (taken[0] is not None) == (with_decoder[0] == 200 and b"parameters" not in body)


def test_the_champion_only_answer_is_predicts_answer(trained):
    """ModelService.champion_answer (the warm path's shortcut past infer/_answer) answers
    exactly what predict answers for the same decoded body, captures the same row, and
    declines (None) whenever another version could answer: a canary or shadow challenger of
    another version, a stale routing entry, another champion."""
    service = trained.service(capture=True)
    service.refresh_seconds = 3600
    body = json.dumps({"instances": [GOOD]}).encode()
    service.predict("churn", [GOOD], request_id="warm-up")  # routes cached
    decoded = service.v1_feed("churn", body)
    assert decoded is not None
    fast = service.champion_answer("churn", decoded, "r-1")
    slow = service.predict("churn", lambda: [GOOD], request_id="r-1", decoded=decoded)
    assert fast == slow and json.dumps(fast) == json.dumps(slow)  # same keys, same order
    service.capture.flush()
    rows = [r for r in store_captures(trained.ctx.store, "captures/churn/")
            if r["request_id"] == "r-1"]
    assert len(rows) == 2
    for r in rows:
        r.pop("at"), r.pop("latency_ms")
    assert rows[0] == rows[1]
    # another champion object than the decoded one (a reload): declined
    other = (object(), decoded[1])
    assert service.champion_answer("churn", other, "r-2") is None  # type: ignore[arg-type]
    # a stale routing entry: declined (predict reloads it)
    service.refresh_seconds = 0
    assert service.champion_answer("churn", decoded, "r-3") is None
    # a challenger of another version: declined, predict routes it
    service.refresh_seconds = 3600
    champion = decoded[0]
    hit = service._routes["churn"]
    service._routes["churn"] = (hit[0], champion, _Version(champion.version + 1),
                                {"mode": "shadow"}, hit[4])
    assert service.champion_answer("churn", decoded, "r-4") is None
    # a challenger that is the champion's own version: not routed, the shortcut answers
    service._routes["churn"] = (hit[0], champion, _Version(champion.version), {}, hit[4])
    assert service.champion_answer("churn", decoded, "r-5") is not None


class _Version:
    def __init__(self, version: int) -> None:
        self.version = version
