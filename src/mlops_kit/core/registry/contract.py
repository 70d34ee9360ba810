"""A version's input contract (what its callers must send) and whether a new version keeps the
promise an old one made to its callers. Pure: dicts in, dicts out.

The contract is recorded in the version's registry entry at registration, from its spec:
features with type, nullable, default, categories and range.

B is compatible with A (A's callers keep working when B answers) when, feature by feature:
- a feature of A that B drops is fine: B ignores it when it is sent;
- a feature B adds must be nullable or have a `default:` (A's callers do not send it);
- a feature in both must keep its type; B may not narrow it: categories A accepted must stay
  accepted, a nullable feature must stay nullable, a numeric range may not shrink.
Anything else is breaking, and each breaking change names its feature.
"""

from __future__ import annotations

from typing import Any

from mlops_kit.errors import BreakingChange

CONTRACT_KEYS = ("name", "type", "nullable", "default", "categories", "min", "max")


def input_contract(spec: Any) -> dict[str, Any]:
    """The contract recorded for a version (from its ModelSpec)."""
    features = []
    for f in spec.features:
        d = f.model_dump(mode="json")
        features.append({k: d.get(k) for k in CONTRACT_KEYS if k in d})
    return {"features": features, "unknown_fields": spec.serving.unknown_fields}


def _by_name(contract: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in contract.get("features") or []}


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


def _narrowed(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why `new` refuses a value `old` accepted, or None."""
    name = old["name"]
    if old.get("type") != new.get("type"):
        return f"{name}: type changed from {old.get('type')} to {new.get('type')}"
    if old.get("nullable") and not new.get("nullable"):
        return f"{name}: was nullable, now required"
    if old.get("type") == "categorical":
        was, now = old.get("categories"), new.get("categories")
        if now is not None and was is None:
            return f"{name}: accepted any category, now only {list(now)}"
        if now is not None and was is not None:
            lost = [c for c in was if c not in set(now)]
            if lost:
                return f"{name}: categories {lost} are no longer accepted"
    else:
        lo_was, lo_now = _num(old.get("min")), _num(new.get("min"))
        hi_was, hi_now = _num(old.get("max")), _num(new.get("max"))
        if lo_now is not None and (lo_was is None or lo_now > lo_was):
            return f"{name}: minimum raised from {lo_was} to {lo_now}"
        if hi_now is not None and (hi_was is None or hi_now < hi_was):
            return f"{name}: maximum lowered from {hi_was} to {hi_now}"
    return None


def compatibility(new: dict[str, Any] | None, old: dict[str, Any] | None) -> dict[str, Any]:
    """Is a version with contract `new` safe for the callers of a version with contract `old`?
    {"compatible": bool | None (unknown: a contract is missing), "breaking": [...],
     "breaking_features": [...], "added": [...], "dropped": [...]}."""
    if not new or not old:
        return {"compatible": None, "breaking": [], "breaking_features": [], "added": [],
                "dropped": [], "note": "no recorded input contract to compare"}
    a, b = _by_name(old), _by_name(new)
    breaking: list[str] = []
    names: list[str] = []
    added = [n for n in b if n not in a]
    for n in added:
        f = b[n]
        if not f.get("nullable") and f.get("default") is None:
            breaking.append(f"{n}: added and required (neither nullable nor with a default), "
                            "so callers that do not send it would be refused")
            names.append(n)
    for n, f in a.items():
        if n in b and (why := _narrowed(f, b[n])):
            breaking.append(why)
            names.append(n)
    return {"compatible": not breaking, "breaking": breaking, "breaking_features": names,
            "added": added, "dropped": [n for n in a if n not in b]}


def ignored_after(new: dict[str, Any] | None, old: dict[str, Any] | None,
                  already: list[str] | None = None) -> list[str]:
    """The fields the new champion ignores when sent: the features of the versions it replaced
    that it dropped (kept across promotions, so callers of any earlier version keep working)."""
    if not new:
        return []
    keep = set(_by_name(new))
    was = set(already or []) | set(_by_name(old or {}))
    return sorted(was - keep)


def check_change(model: str, champion: bool, version: int, record: dict[str, Any],
                 champion_alias: dict[str, Any], champion_record: dict[str, Any],
                 allow_breaking: bool) -> tuple[dict[str, Any], list[str]]:
    """May `version` become champion (or challenger: `champion` False) over the champion?
    Breaking: BreakingChange naming the features, unless `allow_breaking`, which the history
    entry records (the first item returned). The second: the fields a new champion ignores."""
    compat = compatibility(record.get("contract"), champion_record.get("contract"))
    audit: dict[str, Any] = {}
    if compat["compatible"] is False:
        if not allow_breaking:
            role = "promote" if champion else "make challenger"
            raise BreakingChange(
                f"refusing to {role} {model} v{version}: its input contract breaks the callers "
                f"of the champion v{champion_alias['version']}: " + "; ".join(compat["breaking"])
                + " (--allow-breaking --reason TEXT overrides, recorded in history)",
                features=compat["breaking_features"])
        audit = {"allow_breaking": True, "breaking": compat["breaking"]}
    ignored = ignored_after(record.get("contract"), champion_record.get("contract"),
                            champion_alias.get("ignored_fields")) if champion else []
    return audit, ignored


def contract_view(registry: Any, model: str, version: int,
                  record: dict[str, Any] | None = None) -> dict[str, Any]:
    """A version's contract and its compatibility with the champion's callers (for
    `registry show` and the console)."""
    record = record if record is not None else registry.get_version(model, version)
    champion = registry.champion_version(model)
    out: dict[str, Any] = {"contract": record.get("contract"), "champion": champion}
    if champion is not None and int(champion) != int(version):
        other = registry.get_version(model, champion)
        out["compatibility"] = compatibility(record.get("contract"), other.get("contract"))
    elif champion is not None:
        out["compatibility"] = {"compatible": True, "note": "this version is the champion",
                                "breaking": [], "breaking_features": [], "added": [],
                                "dropped": []}
    return out
