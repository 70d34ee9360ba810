"""Experiment runs and their trials, in the model's partition of the key-value table.

Items (pk = MODEL#<name>, next to the registry's VERSION#/RUN#/ALIAS#/HIST# items):
  EXPRUN#000003            one run: the search, its planned trials, a `done` counter, status,
                           the winner. A run is numbered by the version it reserved (one upload
                           = one run = one version), so `runs show churn 3` is version 3's run.
  EXPTRIAL#000003#<hash>   one trial: candidate (kind, params), CV and holdout metrics, fit time,
                           status ok | failed | skipped and the reason.

A trial is recorded with its run's counter in one single-partition transaction: the trial must
not exist yet (a redelivered trial counts once) and the run's revision must still be the one
read (every write of a run is conditional on its `rev`, so concurrent trials and annotations
serialise). The writer that brings `done` to `total` finishes the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlops_kit.core.registry.optimistic import retry_on_conflict
from mlops_kit.core.table_keys import (
    EXPERIMENT_RUN_PREFIX,
    experiment_run_sk,
    model_pk,
    strip_keys,
    trial_sk,
    trials_prefix,
)
from mlops_kit.errors import ConditionFailed, NotFound
from mlops_kit.ports import Absent, Clock, Equals, KeyValueTable, Put

RUNNING, FINISHED, FAILED = "running", "finished", "failed"
MAX_RETRIES = 50


def _contention(model: str, run: int) -> str:
    return f"run {run} of {model!r}: too much contention; retry"



@dataclass(frozen=True)
class Recorded:
    recorded: bool  # False: this trial was already recorded (a duplicate)
    done: int
    total: int

    @property
    def completes_run(self) -> bool:
        return self.recorded and self.done == self.total


class RunStore:
    def __init__(self, table: KeyValueTable, clock: Clock) -> None:
        self.table = table
        self.clock = clock

    def start_run(self, model: str, run: int, record: dict[str, Any]) -> tuple[dict, bool]:
        """Create the run (status running, done 0) or return the one already there."""
        item = {**record, "model": model, "run": int(run), "status": RUNNING, "done": 0, "rev": 0,
                "total": len(record["trials"]), "started_at": self.clock.now().isoformat()}
        try:
            self.table.put(model_pk(model), experiment_run_sk(run), item, Absent())
            return item, True
        except ConditionFailed:
            return self.get_run(model, run), False

    def get_run(self, model: str, run: int) -> dict[str, Any]:
        item = self.table.get(model_pk(model), experiment_run_sk(run))
        if item is None:
            raise NotFound(f"model {model!r} has no run {run}", field="run")
        return strip_keys(item)

    def list_runs(self, model: str) -> list[dict[str, Any]]:
        return [strip_keys(i) for i in self.table.query(model_pk(model), EXPERIMENT_RUN_PREFIX)]

    def trials(self, model: str, run: int) -> list[dict[str, Any]]:
        return [strip_keys(i) for i in self.table.query(model_pk(model), trials_prefix(run))]

    def get_trial(self, model: str, run: int, candidate: str) -> dict[str, Any] | None:
        item = self.table.get(model_pk(model), trial_sk(run, candidate))
        return strip_keys(item) if item else None

    def _next(self, current: dict[str, Any], fields: dict[str, Any]) -> tuple[dict, Equals]:
        rev = int(current.get("rev", 0))
        return {**current, **fields, "rev": rev + 1}, Equals("rev", rev)

    def update_run(self, model: str, run: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Annotate a run (dispatched, tracking) without losing a concurrent write."""
        def attempt() -> dict[str, Any]:
            record, cond = self._next(self.get_run(model, run), fields)
            self.table.put(model_pk(model), experiment_run_sk(run), record, cond)
            return record

        return retry_on_conflict(attempt, MAX_RETRIES, _contention(model, run))

    def record_trial(self, model: str, run: int, trial: dict[str, Any]) -> Recorded:
        """Record a trial once and count it, atomically (one partition, one transaction)."""
        pk = model_pk(model)

        def attempt() -> Recorded:
            current = self.get_run(model, run)
            done, total = int(current["done"]), int(current["total"])
            if self.get_trial(model, run, trial["hash"]) is not None:
                return Recorded(False, done, total)
            item = {**trial, "model": model, "run": int(run),
                    "recorded_at": self.clock.now().isoformat()}
            record, cond = self._next(current, {"done": done + 1})
            self.table.transact([
                Put(pk, trial_sk(run, trial["hash"]), item, Absent()),
                Put(pk, experiment_run_sk(run), record, cond),
            ])
            return Recorded(True, done + 1, total)

        # a conflict: another trial moved the counter (or recorded this one): look again
        return retry_on_conflict(attempt, MAX_RETRIES, _contention(model, run))

    def finish_run(self, model: str, run: int, fields: dict[str, Any]) -> dict[str, Any]:
        """running -> finished | failed, once; a second finisher gets the first one's record."""
        def attempt() -> dict[str, Any]:
            current = self.get_run(model, run)
            if current["status"] != RUNNING:
                return current
            record, cond = self._next(current, {**fields,
                                                "finished_at": self.clock.now().isoformat()})
            self.table.put(model_pk(model), experiment_run_sk(run), record, cond)
            return record

        return retry_on_conflict(attempt, MAX_RETRIES, _contention(model, run))
