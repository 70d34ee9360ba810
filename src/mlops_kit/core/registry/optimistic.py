"""Optimistic concurrency for the registry's table writes: read, modify, write on a condition
(the item is absent, or still the revision read), and when another writer won, read again."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from mlops_kit.errors import ConditionFailed, RegistryConflict

T = TypeVar("T")


def retry_on_conflict(attempt: Callable[[], T], tries: int, gives_up: str, *,
                      on_conflict: Callable[[], None] | None = None) -> T:
    """Run `attempt` (one read-modify-conditional-write) until its write wins and return what
    it returns. A ConditionFailed means someone else wrote first: `on_conflict` runs (it may
    raise, when what was raced for is gone for good) and the attempt reads again. After
    `tries` lost races: RegistryConflict(gives_up), which is retryable (the next delivery sees
    the winner's write)."""
    for _ in range(tries):
        try:
            return attempt()
        except ConditionFailed:
            if on_conflict is not None:
                on_conflict()
    raise RegistryConflict(gives_up)
