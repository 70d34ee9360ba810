"""Pulumi.yaml's config schema, the example stacks and infra/config.py agree.

Pulumi checks a stack's values against the types Pulumi.yaml declares and fills in its defaults
before the program runs; infra/config.py then validates every rule. If the two disagreed (a key
in one only, another type, another default), a value Pulumi accepts could be refused or read
differently by the program. The engine's own checks of a project file are applied here too
(sdk/go/common/workspace/project.go: Validate, ValidateConfigValue).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from infra.config import SCHEMA, StackConfig, parse_config
from mlops_kit.topology import default_topology
from tests.infra.harness import PROJECT, run_program

ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILE = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
CONFIG = PROJECT_FILE["config"]
FUNCTIONS = [f.name for f in default_topology().functions]
STACKS = sorted(ROOT.glob("Pulumi.*.yaml"))
REQUIRED = {"namePrefix"}


def own(key: str) -> bool:
    return ":" not in key or key.startswith(f"{PROJECT}:")


def type_ok(typ: str, value, items: dict | None = None) -> bool:
    """The engine's ValidateConfigValue (ints may arrive as text, booleans as "true")."""
    if typ == "string":
        return isinstance(value, str)
    if typ == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and value.lstrip("-").isdigit())
    if typ == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if typ == "object":
        return isinstance(value, dict)
    if typ == "array":
        return isinstance(value, list) and all(type_ok(items["type"], v, items.get("items"))
                                               for v in value)
    raise AssertionError(f"unknown config type {typ}")


def as_program_sees(value) -> str:
    """What the program reads through pulumi.Config: text, JSON for objects and arrays."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def test_project_name_matches_the_program():
    assert PROJECT_FILE["name"] == PROJECT and PROJECT_FILE["main"] == "infra/"


def test_same_keys_and_types_as_config_py():
    declared = {k: v for k, v in CONFIG.items() if own(k)}
    assert set(declared) == set(SCHEMA)
    for key, spec in declared.items():
        assert spec["type"] == SCHEMA[key][0], key
        assert len(spec.get("description", "")) > 20, f"{key}: describe it"
        if spec["type"] == "array":
            assert "items" in spec, f"{key}: an array declares its items (engine rule)"


def test_defaults_are_config_py_defaults():
    """Every optional key has a default (without one Pulumi demands a value), of its declared
    type, and the program reads it as StackConfig's own default."""
    assert {k for k, v in CONFIG.items() if own(k) and "default" not in v} == REQUIRED
    raw = {k: as_program_sees(v["default"]) for k, v in CONFIG.items()
           if own(k) and "default" in v}
    for key in raw:
        spec = CONFIG[key]
        assert type_ok(spec["type"], spec["default"], spec.get("items")), key
    raw = {k: json.loads(v) if SCHEMA[k][0] in ("object", "array") else v for k, v in raw.items()}
    parsed = parse_config({**raw, "region": "eu-west-1", "namePrefix": "mlopskit-dev"}, FUNCTIONS)
    assert parsed == StackConfig(region="eu-west-1", name_prefix="mlopskit-dev")
    fields = {f.name: f for f in dataclasses.fields(StackConfig)}
    for key, (_, field_name) in SCHEMA.items():
        assert field_name in fields, key


def test_other_namespaces_only_set_values():
    """The engine refuses a type or default on a key of another namespace (aws:...)."""
    for key, spec in CONFIG.items():
        if not own(key):
            assert set(spec) == {"value"}, key
    tags = CONFIG["aws:defaultTags"]["value"]["tags"]
    assert tags["project"] == "mlops-kit"


@pytest.mark.parametrize("stack", STACKS, ids=lambda p: p.name)
def test_example_stacks_are_valid(stack, package_dir):
    values = yaml.safe_load(stack.read_text())["config"]
    for key, value in values.items():
        if own(key):
            name = key.split(":", 1)[1]
            assert name in SCHEMA, f"{stack.name}: {key} is not declared in Pulumi.yaml"
            spec = CONFIG[name]
            assert type_ok(spec["type"], value, spec.get("items")), f"{stack.name}: {key}"
    # a stack's aws:defaultTags replaces the project's: it must keep the project's tags
    project_tags = CONFIG["aws:defaultTags"]["value"]["tags"]
    stack_tags = values.get("aws:defaultTags", {"tags": project_tags})["tags"]
    assert project_tags.items() <= stack_tags.items()
    # and the program accepts it: defaults filled in as Pulumi does, then rendered under mocks
    merged = {f"{PROJECT}:{k}": as_program_sees(v["default"]) for k, v in CONFIG.items()
              if own(k) and "default" in v}
    merged.update({k: as_program_sees(v) for k, v in values.items()})
    if merged.get(f"{PROJECT}:cloud") == "azure":  # the Azure rendering (infra/azure_stack)
        from tests.infra.azure_harness import run_azure

        assert run_azure(merged).of("azure-native:web:WebApp")
        return
    merged[f"{PROJECT}:packageDir"] = str(package_dir)  # the zips `make package` would build
    graph = run_program(merged)
    assert graph.of("aws:lambda/function:Function")
