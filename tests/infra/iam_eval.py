"""A small IAM evaluator for identity policies (Allow statements), strict where AWS is strict.

- Action and Resource match with IAM's wildcards (`*` any run of characters, `/` included;
  `?` one character), actions case-insensitively.
- A Condition must hold for the statement to apply. A condition key missing from the request
  context makes a String*/Arn* operator false (AWS's rule; only ...IfExists would pass).
- Only Allow statements are expected in role policies (a Deny makes the evaluator refuse).

AWS evaluates more than this (SCPs, boundaries, resource policies); what is here is enough to
answer "does this role's own policy allow this call", the question the tests ask.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

OPERATORS = {"StringEquals", "StringLike", "ArnEquals", "ArnLike"}


def _glob(pattern: str, value: str, *, case: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _as_list(v: Any) -> list:
    return v if isinstance(v, list) else [v]


def _condition_holds(condition: Mapping[str, Mapping[str, Any]],
                     context: Mapping[str, str]) -> bool:
    for operator, keys in condition.items():
        if operator not in OPERATORS:
            raise ValueError(f"the evaluator does not know condition operator {operator}")
        for key, expected in keys.items():
            if key not in context:
                return False
            actual = context[key]
            like = operator in ("StringLike", "ArnLike")
            if not any(_glob(e, actual) if like else e == actual for e in _as_list(expected)):
                return False
    return True


def allows(policy: Mapping[str, Any], action: str, resource: str,
           context: Mapping[str, str] | None = None) -> bool:
    context = context or {}
    allowed = False
    for stmt in _as_list(policy["Statement"]):
        if stmt["Effect"] != "Allow":
            raise ValueError("role policies here only allow; a Deny needs a real evaluator")
        if not any(_glob(a, action, case=False) for a in _as_list(stmt["Action"])):
            continue
        if not any(_glob(r, resource) for r in _as_list(stmt["Resource"])):
            continue
        if "Condition" in stmt and not _condition_holds(stmt["Condition"], context):
            continue
        allowed = True
    return allowed


def grants(policy: Mapping[str, Any]) -> Iterable[tuple[str, str, dict | None]]:
    """Every (action, resource pattern, condition) the policy allows."""
    for stmt in _as_list(policy["Statement"]):
        for a in _as_list(stmt["Action"]):
            for r in _as_list(stmt["Resource"]):
                yield a, r, stmt.get("Condition")


def matches(pattern: str, value: str) -> bool:
    """IAM's wildcard match (exposed for tests that compare grants with calls)."""
    return _glob(pattern, value)
