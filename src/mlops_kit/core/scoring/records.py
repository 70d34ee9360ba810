"""Scoring jobs in the key-value table: what `mlops-kit jobs` lists, and the counter a
fanned-out job completes by (the pattern of experiment trials, core/registry/experiments.py).

Items (pk = SCORING#<model>, one partition per model: every transaction stays in it):
  JOB#<name>#<etag>               one job (one upload of scoring/<model>/<name>.*): status
                                  running | scored | failed | quarantined, `total` chunks,
                                  `done`, the row counts summed so far, `rev`.
  CHUNK#<name>#<etag>#00003       one chunk's outcome: rows, parts, rejects.

A chunk is recorded with the job's counter in one transaction: the chunk must not exist yet (a
redelivered chunk counts once) and the job's `rev` must still be the one read (concurrent
chunks serialise). The writer that brings `done` to `total` writes the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlops_kit.core.table_keys import scoring_chunk_sk as chunk_sk
from mlops_kit.core.table_keys import scoring_job_sk as job_sk
from mlops_kit.core.table_keys import scoring_pk, strip_keys
from mlops_kit.errors import ConditionFailed, NotFound, RegistryConflict
from mlops_kit.ports import Absent, Clock, Equals, KeyValueTable, Put

RUNNING, SCORED, FAILED, QUARANTINED = "running", "scored", "failed", "quarantined"
MAX_RETRIES = 50
_SUMS = ("rows_in", "rows_scored", "rows_rejected")


@dataclass(frozen=True)
class Counted:
    recorded: bool  # False: this chunk was recorded before (a redelivery)
    done: int
    total: int

    @property
    def completes_job(self) -> bool:
        return self.recorded and self.done == self.total


class ScoringJobs:
    def __init__(self, table: KeyValueTable, clock: Clock) -> None:
        self.table, self.clock = table, clock

    def start(self, model: str, name: str, etag: str, record: dict[str, Any]
              ) -> tuple[dict[str, Any], bool]:
        """Create the job (running, done 0) or return the one already there. A job of the
        same upload that `failed` before any chunk was counted (no model to score with, then)
        starts again: the same bytes uploaded again may now have a model. A quarantined file
        stays quarantined; a scored one answers from its manifest."""
        item = {**record, "model": model, "name": name, "etag": etag, "status": RUNNING,
                "done": 0, "rev": 0, **{k: 0 for k in _SUMS},
                "started_at": self.clock.now().isoformat()}
        pk, sk = scoring_pk(model), job_sk(name, etag)
        try:
            self.table.put(pk, sk, item, Absent())
            return item, True
        except ConditionFailed:
            current = self.get(model, name, etag)
        if current["status"] != FAILED or int(current.get("done") or 0) or current.get("chunked"):
            return current, False
        rev = int(current.get("rev", 0))
        try:
            self.table.put(pk, sk, {**item, "rev": rev + 1}, Equals("rev", rev))
            return {**item, "rev": rev + 1}, True
        except ConditionFailed:
            return self.get(model, name, etag), False

    def get(self, model: str, name: str, etag: str) -> dict[str, Any]:
        item = self.table.get(scoring_pk(model), job_sk(name, etag))
        if item is None:
            raise NotFound(f"no scoring job for {name!r} of {model!r} (etag {etag})",
                           field="job")
        return strip_keys(item)

    def all(self, model: str) -> list[dict[str, Any]]:
        return [strip_keys(i) for i in self.table.query(scoring_pk(model), "JOB#")]

    def chunks(self, model: str, name: str, etag: str, total: int) -> list[dict[str, Any]]:
        """The recorded chunks, one get each (no Query: the validate role may not list the
        table, which keeps a function under another's keys refused, tests/functions)."""
        found = (self.get_chunk(model, name, etag, i) for i in range(int(total)))
        return [c for c in found if c is not None]

    def get_chunk(self, model: str, name: str, etag: str, index: int) -> dict[str, Any] | None:
        item = self.table.get(scoring_pk(model), chunk_sk(name, etag, index))
        return strip_keys(item) if item else None

    @staticmethod
    def _next(current: dict[str, Any], fields: dict[str, Any]) -> tuple[dict, Equals]:
        rev = int(current.get("rev", 0))
        return {**current, **fields, "rev": rev + 1}, Equals("rev", rev)

    def update(self, model: str, name: str, etag: str, fields: dict[str, Any]) -> dict:
        for _ in range(MAX_RETRIES):
            record, cond = self._next(self.get(model, name, etag), fields)
            try:
                self.table.put(scoring_pk(model), job_sk(name, etag), record, cond)
                return record
            except ConditionFailed:
                continue
        raise RegistryConflict(f"scoring job {name!r} of {model!r}: too much contention; retry")

    def record_chunk(self, model: str, name: str, etag: str, chunk: dict[str, Any]) -> Counted:
        """Record a chunk once and count it (and its rows) in the job, atomically."""
        pk, index = scoring_pk(model), int(chunk["index"])
        for _ in range(MAX_RETRIES):
            current = self.get(model, name, etag)
            done, total = int(current["done"]), int(current["total"])
            if self.get_chunk(model, name, etag, index) is not None:
                return Counted(False, done, total)
            item = {**chunk, "model": model, "name": name,
                    "recorded_at": self.clock.now().isoformat()}
            sums = {k: int(current.get(k) or 0) + int(chunk.get(k) or 0) for k in _SUMS}
            record, cond = self._next(current, {"done": done + 1, **sums})
            try:
                self.table.transact([Put(pk, chunk_sk(name, etag, index), item, Absent()),
                                     Put(pk, job_sk(name, etag), record, cond)])
                return Counted(True, done + 1, total)
            except ConditionFailed:
                continue  # another chunk moved the counter (or recorded this one): look again
        raise RegistryConflict(f"scoring job {name!r} of {model!r}: too much contention; retry")

    def finish(self, model: str, name: str, etag: str, fields: dict[str, Any]
               ) -> tuple[dict[str, Any], bool]:
        """running -> scored | failed | quarantined, once: (the record, whether this call
        ended it). A second finisher gets the first one's record and False."""
        for _ in range(MAX_RETRIES):
            current = self.get(model, name, etag)
            if current["status"] != RUNNING:
                return current, False
            record, cond = self._next(current, {**fields,
                                                "finished_at": self.clock.now().isoformat()})
            try:
                self.table.put(scoring_pk(model), job_sk(name, etag), record, cond)
                return record, True
            except ConditionFailed:
                continue
        raise RegistryConflict(f"scoring job {name!r} of {model!r}: too much contention; retry")
