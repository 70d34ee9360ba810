"""light_settings.read_settings (the serve function's settings, no pydantic) agrees with
pydantic's Settings on every environment: the same fields and defaults, the same values for the
spellings it converts itself, and pydantic's own answer (a value or its ValidationError) for the
others. pydantic's conversion rules for strings (lax mode: numbers, booleans' spellings):
https://docs.pydantic.dev/latest/concepts/conversion_table/"""

from __future__ import annotations

import os
import typing
from unittest import mock

import annotated_types
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mlops_kit import light_settings
from mlops_kit.light_settings import LightSettings, read_settings
from mlops_kit.settings import Settings
from tests.support import examples

FIELDS = list(Settings.model_fields)


def test_the_fields_names_defaults_and_rules_are_settings():
    assert list(light_settings.FIELDS) == FIELDS
    for name, info in Settings.model_fields.items():
        assert getattr(LightSettings, name) == info.default, name
        bounds = {type(m).__name__.lower(): getattr(m, type(m).__name__.lower())
                  for m in info.metadata if isinstance(m, (annotated_types.Ge, annotated_types.Gt,
                                                           annotated_types.Le))}
        ge, gt, le = light_settings._BOUNDS.get(name, (None, None, None))
        assert {k: v for k, v in {"ge": ge, "gt": gt, "le": le}.items() if v is not None} \
            == bounds, name
        args = [a for a in typing.get_args(info.annotation) if a is not type(None)]
        literal = next((a for a in [info.annotation, *args]
                        if typing.get_origin(a) is typing.Literal), None)
        kind = light_settings._KINDS.get(name, "str")
        if literal is not None:
            assert kind == typing.get_args(literal), name
        else:
            base = args[0] if args else info.annotation
            assert kind == {"str": "str", "Path": "path", "bool": "bool", "int": "int",
                            "float": "float"}[base.__name__], name
    # the connection string stays out of repr, as Settings' (repr=False); frozen
    light = LightSettings(azure_connection_string="k", backend="aws")
    assert "azure_connection_string" not in repr(light) and "'aws'" in repr(light)
    with pytest.raises(AttributeError):
        light.backend = "local"  # type: ignore[misc]


def _read(env: dict[str, str]):
    """(read_settings(), Settings()) under exactly these MLOPSKIT_* variables; an exception
    stands for its errors."""
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("MLOPSKIT_")}
    with mock.patch.dict(os.environ, {**base, **env}, clear=True):
        out = []
        for build in (read_settings, Settings):
            try:
                out.append(build())
            except ValidationError as exc:
                out.append(exc)
        return out


def _same(light, pydantic) -> None:
    if isinstance(pydantic, ValidationError):
        assert isinstance(light, ValidationError)
        assert light.errors() == pydantic.errors()
        return
    for name in FIELDS:
        a, b = getattr(light, name), getattr(pydantic, name)
        assert (a, type(a)) == (b, type(b)) or (a != a and b != b), name


INTS = [n for n, k in light_settings._KINDS.items() if k == "int"]
FLOATS = [n for n, k in light_settings._KINDS.items() if k == "float"]
BOOLS = [n for n, k in light_settings._KINDS.items() if k == "bool"]
LITERALS = [n for n, k in light_settings._KINDS.items() if isinstance(k, tuple)]
STRS = [n for n in FIELDS if light_settings._KINDS.get(n, "str") in ("str", "path")]

# spellings a deployment writes, and the odd ones only pydantic's rules decide
TRICKY = st.sampled_from(["", " ", "1_000", "1__0", "_1", "1.0", "1.5", " 7", "7 ", "+7", "-0",
                          "007", "1e3", "1E-2", ".5", "5.", "nan", "NaN", "inf", "-inf",
                          "Infinity", "0x10", "１２", "True", "TRUE", " true", "yes", "oN", "2",
                          "local", "AWS", "aws ", "none", "None", "null", "é", "\u212a"])
NUMBERS = st.one_of(st.integers(-10**20, 10**20).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.floats(-1e6, 1e6).map(lambda f: f"{f:.3f}"),
                    st.floats(-1e6, 1e6).map(lambda f: f"{f:e}"))
VALUE = st.one_of(TRICKY, NUMBERS,
                  st.text(st.characters(blacklist_characters="\x00"), max_size=12),
                  st.sampled_from(["true", "false", "1", "0", "y", "n", "t", "f", "on", "off"]),
                  st.sampled_from(["local", "aws", "azure", "token", "none", "auto", "queue",
                                   "batch", "process", "processes", "sequential"]))


@settings(max_examples=examples(600))
@given(st.dictionaries(st.sampled_from(FIELDS + ["unknown_thing"]), VALUE, max_size=6),
       st.booleans())
def test_any_environment_reads_as_settings_reads_it(env, lower):
    light, pydantic = _read({("mlopskit_" if lower else "MLOPSKIT_") + k.upper(): v
                             for k, v in env.items()})
    _same(light, pydantic)


CANONICAL = st.fixed_dictionaries({}, optional={
    "serving_warm_versions": st.integers(1, 64).map(str),
    "batch_attempts": st.integers(1, 10).map(str),
    **{n: st.integers(128, 10**9).map(str) for n in INTS
       if n not in ("serving_warm_versions", "batch_attempts")},
    **{n: st.floats(0.001, 1).map(repr) for n in FLOATS},
    **{n: st.sampled_from(["true", "False", "1", "0", "yes", "OFF"]) for n in BOOLS},
    **{n: st.sampled_from(light_settings._KINDS[n]) for n in LITERALS},
    **{n: st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
       for n in STRS},
})


@settings(max_examples=examples(300))
@given(CANONICAL)
def test_a_deployments_environment_is_read_without_pydantic(env):
    """What deployments write (Pulumi's env vars, app settings): read here, never handed over."""
    light, pydantic = _read({f"MLOPSKIT_{k.upper()}": v for k, v in env.items()})
    assert type(light) is LightSettings
    _same(light, pydantic)


@pytest.mark.parametrize(("name", "value"), [
    ("refresh_seconds", "-1"), ("serving_warm_versions", "65"), ("backend", "gcp"),
    ("capture", "maybe"), ("capture_max_rows", "many"), ("train_memory_fraction", "0")])
def test_a_bad_value_is_pydantics_error_naming_the_field(name, value):
    light, pydantic = _read({f"MLOPSKIT_{name.upper()}": value})
    assert isinstance(light, ValidationError)
    assert [e["loc"] for e in light.errors()] == [(name,)]
    _same(light, pydantic)
