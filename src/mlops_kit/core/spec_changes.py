"""What a new spec changes against the one applied before, and when each change takes effect
(`mlops-kit spec apply` prints it). Pure: two specs in, a list of changes out."""

from __future__ import annotations

from typing import Any

from mlops_kit.core.spec import ModelSpec

__all__ = ["spec_changes", "takes_effect"]

NEXT_MONITOR = "at the next monitoring run (the current spec governs monitoring)"
NEXT_UPLOAD = ("at the next upload: validation, training and promotion of new versions; "
               "served versions keep theirs (re-upload the data to retrain)")
NEXT_VERSION = "with the next version trained (each version keeps the checks it was trained with)"
NOW = "now (metadata only)"


def takes_effect(path: str) -> str:
    section = path.split(".", 1)[0]
    if section == "monitoring":
        return NEXT_MONITOR
    if section == "description":
        return NOW
    if section == "serving":
        return NEXT_VERSION
    if section == "training":
        return "at the next upload (where training runs; it does not change the model)"
    return NEXT_UPLOAD


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out or {prefix.rstrip("."): {}}
    if isinstance(data, list) and data and all(isinstance(x, dict) and "name" in x for x in data):
        out = {}
        for x in data:  # features by name, not by position
            out.update(_flat({k: v for k, v in x.items() if k != "name"},
                             f"{prefix}{x['name']}."))
        return out
    return {prefix.rstrip("."): data}


def spec_changes(before: ModelSpec | None, after: ModelSpec) -> list[dict[str, Any]]:
    """[{path, before, after, takes_effect}] for every value that differs (all of them new
    when there was no spec before: then `before` is None for each)."""
    if before is None:
        return []
    old = _flat(before.model_dump(mode="json"))
    new = _flat(after.model_dump(mode="json"))
    out = []
    for path in sorted(set(old) | set(new)):
        if old.get(path, "<absent>") != new.get(path, "<absent>"):
            out.append({"path": path, "before": old.get(path), "after": new.get(path),
                        "takes_effect": takes_effect(path)})
    return out
