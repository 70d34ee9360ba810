"""`mlops-kit jobs` on a backend whose queues cannot list their messages (SQS, Storage
Queues): a training pending past the visibility timeout shows as stuck from the registry
alone, recently ended versions with their last error, and queue depths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlops_kit.core.context import Context
from mlops_kit.core.inflight import work_in_flight


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t


class CountingQueue:
    """What the cloud queues offer: a depth and a peek at the dead letters, no listing."""

    def __init__(self, name: str, depth: int = 0) -> None:
        self.name, self._depth = name, depth

    def depth(self) -> int:
        return self._depth

    def dead_letters(self) -> list:
        return []


def test_a_stuck_training_shows_without_listing_messages(backend):
    clock = Clock()
    ctx = Context(store=backend.ctx.store, table=backend.ctx.table,
                  train_queue=CountingQueue("mlops-train", depth=2), notifier=backend.ctx.notifier,
                  clock=clock, stuck_after_s=900)
    reg = ctx.registry
    failed = reg.reserve_version("churn", "run-1", {"dataset_key": "datasets/churn/a.csv"})
    reg.complete_version("churn", failed.version, {"status": "failed",
                                                   "reasons": ["bad params: C must be > 0"]})
    reg.reserve_version("churn", "run-2", {"dataset_key": "datasets/churn/b.csv",
                                           "engine": "batch"})
    clock.t += timedelta(minutes=5)
    view = work_in_flight(ctx, CountingQueue("mlops-validate"), "churn")
    rows = {r["version"]: r for r in view["jobs"]}
    assert rows[2]["state"] == "running" and rows[2]["where"] == "batch"
    assert rows[1]["state"] == "failed" and rows[1]["last_error"] == "bad params: C must be > 0"
    assert view["queues"]["train"] == {"name": "mlops-train", "depth": 2, "dead_letters": 0}
    clock.t += timedelta(minutes=20)  # past the train queue's visibility timeout
    row = {r["version"]: r for r in work_in_flight(ctx, None, "churn")["jobs"]}[2]
    assert row["state"] == "stuck" and "visibility timeout" in row["last_error"]
    assert row["age_seconds"] == 25 * 60
    clock.t += timedelta(days=2)  # ended long ago: no longer listed; stuck stays
    assert [r["version"] for r in work_in_flight(ctx, None, "churn")["jobs"]] == [2]
