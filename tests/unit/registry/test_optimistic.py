"""retry_on_conflict: the one read-modify-conditional-write loop of the registry."""

from __future__ import annotations

import pytest

from mlops_kit.core.registry.optimistic import retry_on_conflict
from mlops_kit.errors import ConditionFailed, RegistryConflict


def losing(times: int, result: str = "won"):
    calls: list[int] = []

    def attempt() -> str:
        calls.append(len(calls))
        if len(calls) <= times:
            raise ConditionFailed("someone wrote first")
        return result

    return attempt, calls


def test_a_lost_race_reads_again_until_the_write_wins():
    attempt, calls = losing(2)
    conflicts: list[int] = []
    assert retry_on_conflict(attempt, 5, "gave up",
                             on_conflict=lambda: conflicts.append(1)) == "won"
    assert len(calls) == 3 and len(conflicts) == 2


def test_too_many_lost_races_give_up_with_a_retryable_conflict():
    attempt, calls = losing(10)
    with pytest.raises(RegistryConflict, match="^gave up$") as info:
        retry_on_conflict(attempt, 4, "gave up")
    assert len(calls) == 4 and info.value.retryable


def test_on_conflict_may_end_the_retries_for_good():
    attempt, calls = losing(10)

    def gone() -> None:
        raise RegistryConflict("moved meanwhile") from None

    with pytest.raises(RegistryConflict, match="moved meanwhile"):
        retry_on_conflict(attempt, 4, "gave up", on_conflict=gone)
    assert len(calls) == 1


def test_other_errors_are_not_retried():
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        retry_on_conflict(attempt, 4, "gave up")
    assert calls == [1]
