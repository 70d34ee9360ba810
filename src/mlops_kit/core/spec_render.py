"""`spec init`'s output: an Inferred (spec_infer.py) as a commented YAML spec. Every feature
carries its evidence as a comment; a column that is not a feature is written with the reason as
a `role: id` (identifier-like) or `role: ignore` entry (commented out when the spec has no
roles); the proposed positive class is flagged for the user to confirm.

Strings are quoted whenever YAML could read them as something else (yes/no/on/off are booleans
in YAML 1.1, 1.0 a number, null nothing), so a category "yes" stays the string "yes"."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import get_args

from pydantic import BaseModel

from mlops_kit.core.spec import CategoricalFeature, Feature, ModelSpec
from mlops_kit.core.spec_infer import Decision, Inferred

__all__ = ["feature_types", "render_spec", "spec_accepts"]

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_YAML_WORDS = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "nan", "inf"}
METRIC = {"binary_classification": "roc_auc", "multiclass_classification": "f1_macro",
          "regression": "rmse"}
ESTIMATOR = {"binary_classification": "logistic_regression",
             "multiclass_classification": "logistic_regression", "regression": "ridge"}


def feature_types() -> set[str]:
    """The `type:` values the spec's feature union accepts (new types join the union)."""
    union = get_args(get_args(Feature)[0])
    return {cls.model_fields["type"].default for cls in union}


def spec_accepts(field: str, model: type[BaseModel] = ModelSpec) -> bool:
    return field in model.model_fields


def q(value: object) -> str:
    """A YAML scalar that reads back as exactly this string."""
    s = str(value)
    if _PLAIN.fullmatch(s) and s.lower() not in _YAML_WORDS:
        return s
    return json.dumps(s, ensure_ascii=False)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def _evidence(d: Decision) -> str:
    p = d.profile
    distinct = f"{p.distinct:,}" if p.counts is not None else f"more than {p.distinct - 1:,}"
    ex = ", ".join(e[:24] for e in p.examples())
    return (f"{d.kind}: {distinct} distinct, {p.null_rate:.1%} missing"
            + (f", observed {_num(p.min)}..{_num(p.max)}" if d.kind == "numeric" else "")
            + (f", {p.date_min}..{p.date_max}" if d.kind == "datetime" and p.date_min else "")
            + (f", {p.words:.1f} words per value" if d.kind == "text" else "")
            + (f"; e.g. {ex}" if ex else ""))


def _feature(d: Decision, inf: Inferred, types: set[str]) -> list[str]:
    p = d.profile
    lines = [f"  # {_evidence(d)}", f"  - name: {q(p.name)}"]
    if d.kind == "boolean" and "boolean" not in types:
        lines[0] += " (a yes/no column: written as categorical, its spellings quoted)"
        kind = "categorical"
    else:
        kind = d.kind
    lines.append(f"    type: {kind}")
    if p.nulls:
        lines.append("    nullable: true")
    if d.min is not None and d.max is not None:
        lines += [f"    min: {_num(d.min)}", f"    max: {_num(d.max)}"]
    if d.categories is not None and kind == "categorical":
        lines.append(f"    categories: [{', '.join(q(c) for c in d.categories)}]")
    elif kind == "categorical" and spec_accepts("max_categories", CategoricalFeature):
        lines.append(f"    max_categories: {inf.max_categories}")
    elif kind == "categorical":
        lines[0] += (f"\n  # more than {inf.max_categories} distinct values (max_categories): "
                     "no list, any value is accepted")
    return lines


def render_spec(inf: Inferred, name: str, *, source: str, types: set[str] | None = None,
                positive_key: bool | None = None) -> str:
    """positive_key: write `positive_class:` as a key (None: when the spec has the field)."""
    types = types if types is not None else feature_types()
    t = inf.target
    out = [
        f"# Proposed by `mlops-kit spec init` from {source} ({inf.rows:,} rows, "
        f"{len(inf.columns) + 1} columns). Review it, then:",
        f"#   mlops-kit spec check {name}.yaml --data {source}  and  mlops-kit spec apply",
        f"# Ranges: the observed min/max widened by {inf.margin:.0%} of the observed span "
        "(a column never below 0 stays >= 0).",
        f"# Categories: listed when a column has at most {inf.max_categories} distinct values.",
        f"name: {q(name)}",
        f"task: {inf.task}",
        f"target: {q(t.name)}",
    ]
    if inf.task != "regression":
        counts: Mapping[str, int] = t.counts or {}
        shares = ", ".join(f"{q(c)} {counts.get(c, 0):,}" for c in inf.classes[:10])
        out.append(f"# target classes: {shares}")
    if inf.positive_class is not None:
        n = t.counts[inf.positive_class] if t.counts else 0
        out.append(f"# CONFIRM: positive class proposed as the minority class "
                   f"{q(inf.positive_class)} ({n:,} of {t.present:,} rows)")
        key = f"positive_class: {q(inf.positive_class)}"
        active = spec_accepts("positive_class") if positive_key is None else positive_key
        out.append(key if active else f"# {key}")
    out.append("features:")
    for d in inf.features:
        out += _feature(d, inf, types)
    left = [d for d in inf.columns if d.reason is not None]
    if left and spec_accepts("ids"):
        # active entries, not comments: a raw record carrying these columns is still accepted
        # (requests reject unknown fields), and ids are carried into captures
        out.append("  # Not features (replace the role with a type to use one as a feature):")
        for d in left:
            role = "id" if d.reason and d.reason.startswith("identifier-like") else "ignore"
            out += [f"  # {d.reason}; {_evidence(d)}",
                    f"  - {{name: {q(d.profile.name)}, role: {role}}}"]
    elif left:
        out.append("  # Not features (uncomment one to use it):")
        for d in left:
            out.append(f"  # - name: {q(d.profile.name)}  # {d.reason}; {_evidence(d)}")
    out += ["estimator:", f"  kind: {ESTIMATOR[inf.task]}",
            "promotion:", f"  metric: {METRIC[inf.task]}"]
    out += _validation(inf)
    return "\n".join(out) + "\n"


def _validation(inf: Inferred) -> list[str]:
    """Only what the defaults would refuse for this very file."""
    lines: list[str] = []
    worst = max((d.profile.null_rate for d in inf.features), default=0.0)
    if worst > 0.2:  # validation.max_null_fraction's default
        cap = min(0.99, round(worst + 0.1, 2))
        lines.append(f"  max_null_fraction: {cap}  # the most-missing feature has {worst:.1%}")
    counts = inf.target.counts
    if inf.task != "regression" and counts:
        share = min(counts.values()) / max(1, inf.target.present)
        if share < 0.01:  # validation.min_class_fraction's default
            lines.append(f"  min_class_fraction: {share / 2:.4f}  # the rarest class has "
                         f"{share:.2%}")
    return ["validation:", *lines] if lines else []


def check_rendered(text: str) -> ModelSpec:
    """The YAML as `spec apply` will read it (a bug here must never reach the user's file)."""
    from mlops_kit.core.spec import load_spec_bytes

    return load_spec_bytes(text.encode(), source="spec init")
