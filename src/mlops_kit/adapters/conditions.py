"""Write conditions evaluated on an item read from the store (cloud-neutral). The local table
checks them inside its SQLite transaction; the Azure table checks them on a read and pins the
write to the ETag it read, so the service refuses the write if the item changed meanwhile."""

from __future__ import annotations

from typing import Any

from mlops_kit.errors import ConditionFailed
from mlops_kit.ports import Absent, AbsentOrEquals, Condition, Equals


def holds(current: dict[str, Any] | None, cond: Condition) -> bool:
    """Does `cond` hold for the item `current` (None: the item does not exist)?"""
    if cond is None:
        return True
    if isinstance(cond, Absent):
        return current is None
    if isinstance(cond, Equals):
        return current is not None and current.get(cond.attr) == cond.value
    if isinstance(cond, AbsentOrEquals):
        return current is None or current.get(cond.attr) == cond.value
    raise TypeError(f"unknown condition {cond!r}")


def check(current: dict[str, Any] | None, cond: Condition, pk: str, sk: str) -> None:
    if not holds(current, cond):
        raise ConditionFailed(f"condition {cond} failed for {pk}/{sk}")
