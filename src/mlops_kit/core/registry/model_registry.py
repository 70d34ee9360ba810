"""The model registry over a KeyValueTable (its items: core/table_keys.py, pk = MODEL#<name>:
versions, run reservations, aliases, alias history, the latest-version counter, monitoring
summaries; pk = MODELS: the model index).

Every transaction stays in the model's own partition (MODEL#<name>), on every backend. Every
alias move is a conditional write on the alias's current version plus a history entry,
in one transaction: two concurrent promotions cannot both win, and history never disagrees
with the alias. Every transaction also puts the model's summary (core/registry/summary.py), so the
console reads one item per model.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlops_kit.core.registry import summary as summaries
from mlops_kit.core.registry.contract import check_change
from mlops_kit.core.registry.optimistic import retry_on_conflict
from mlops_kit.core.table_keys import (
    ALIAS_PREFIX,
    HISTORY_PREFIX,
    HISTORY_SEQ_SK,
    META_SK,
    MODELS_PK,
    MONITOR_RUN_PREFIX,
    SUMMARY_SK,
    VERSION_PREFIX,
    alias_sk,
    history_sk,
    model_pk,
    monitor_run_sk,
    run_key_sk,
    strip_keys,
    version_sk,
)
from mlops_kit.errors import ConditionFailed, NotFound, PromotionRefused, RegistryConflict
from mlops_kit.ports import (
    Absent,
    AbsentOrEquals,
    Clock,
    Delete,
    Equals,
    KeyValueTable,
    Notifier,
    Put,
)

CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES = (CHAMPION, CHALLENGER)
PENDING, REGISTERED, REJECTED = "pending", "registered", "rejected"
# The training job itself failed for good (bad params, unreadable data, a bug): never servable,
# `reasons` says why. Rejected means the job ran and a gate said no.
FAILED = "failed"
MAX_RETRIES = 20



@dataclass(frozen=True)
class Reservation:
    version: int
    record: dict[str, Any]
    created: bool  # False: this run was already reserved (a retry or duplicate delivery)


class Registry:
    def __init__(
        self, table: KeyValueTable, clock: Clock, notifier: Notifier | None = None,
        stuck_after_s: float | None = None,
    ) -> None:
        self.table = table
        self.clock = clock
        self.notifier = notifier
        # A version `pending` for longer than the training queue's visibility timeout is stuck:
        # its job is neither running nor waiting (it died, or sits in the dead-letter queue).
        self.stuck_after_s = stuck_after_s

    def _now(self) -> str:
        return self.clock.now().isoformat()

    # -- versions --------------------------------------------------------------------------
    def reserve_version(self, model: str, run_key: str, lineage: dict[str, Any]) -> Reservation:
        """Take the next version number for this run, or return the one it already has."""
        pk = model_pk(model)
        self._index(model)

        def attempt() -> Reservation:
            run = self.table.get(pk, run_key_sk(run_key))
            if run is not None:
                version = int(run["version"])
                return Reservation(version, self.get_version(model, version), False)
            meta = self.table.get(pk, META_SK)
            latest = int(meta["latest"]) if meta else 0
            version = latest + 1
            record = {
                "model": model,
                "version": version,
                "status": PENDING,
                "run_key": run_key,
                "created_at": self._now(),
                "lineage": lineage,
            }
            self.commit(model, [
                Put(pk, META_SK, {"latest": version}, AbsentOrEquals("latest", meta and latest)),
                Put(pk, version_sk(version), record, Absent()),
                Put(pk, run_key_sk(run_key), {"version": version}, Absent()),
            ])
            return Reservation(version, record, True)

        # a lost race for this number or this run: look again
        return retry_on_conflict(
            attempt, MAX_RETRIES, f"could not reserve a version of {model!r}: too much contention")

    def _index(self, model: str) -> None:
        """The MODELS index row, written before (never with) the model's own rows: every
        transaction stays in one partition (Azure Table transactions are single-partition). A
        crash in between leaves an indexed model with no version yet, which lists as empty."""
        try:
            self.table.put(MODELS_PK, model, {"model": model, "created_at": self._now()}, Absent())
        except ConditionFailed:
            pass  # already indexed

    def complete_version(self, model: str, version: int, fields: dict[str, Any]) -> dict:
        """pending -> registered/rejected/failed, exactly once (the registry entry is written
        last)."""
        def attempt() -> dict[str, Any]:
            current = self._stored_version(model, version)
            if current["status"] != PENDING:
                return current  # completed already (by a redelivery, or a concurrent completer)
            record = {**current, **fields, "completed_at": self._now()}
            self.commit(model, [Put(model_pk(model), version_sk(version), record,
                                    Equals("status", PENDING))])
            return record

        return retry_on_conflict(attempt, MAX_RETRIES,
                                 f"v{version} of {model!r}: too much contention; retry")

    def get_version(self, model: str, version: int) -> dict[str, Any]:
        return self._with_stuck(self._stored_version(model, version))

    def _stored_version(self, model: str, version: int) -> dict[str, Any]:
        item = self.table.get(model_pk(model), version_sk(int(version)))
        if item is None:
            raise NotFound(f"model {model!r} has no version {version}", field="version")
        return strip_keys(item)

    def update_version(self, model: str, version: int, fields: dict[str, Any], actor: str) -> dict:
        """Mutable annotations only (approval); metrics and artifacts stay immutable."""
        allowed = {"approved", "approved_by", "approved_at"}
        bad = set(fields) - allowed
        if bad:
            raise RegistryConflict(f"version fields {sorted(bad)} are immutable")
        def attempt() -> dict[str, Any]:
            current = self._stored_version(model, version)
            record = {**current, **fields}
            self.commit(model, [
                Put(model_pk(model), version_sk(version), record,
                    Equals("status", current["status"])),
                *self._history_ops(model, "annotate", None, version, actor, str(fields))])
            return record

        return retry_on_conflict(attempt, MAX_RETRIES,
                                 f"v{version} of {model!r}: too much contention; retry")

    def list_versions(self, model: str, newest: int | None = None) -> list[dict[str, Any]]:
        """Every version, oldest first; or the `newest` ones only (one query either way)."""
        items = (self.table.query(model_pk(model), VERSION_PREFIX) if newest is None else
                 self.table.query(model_pk(model), VERSION_PREFIX, reverse=True,
                                  limit=newest)[::-1])
        return [self._with_stuck(strip_keys(i)) for i in items]

    def _with_stuck(self, item: dict[str, Any]) -> dict[str, Any]:
        """A pending version gets `stuck` (computed, never stored): true once it is older than
        the training queue's visibility timeout."""
        if item.get("status") != PENDING or self.stuck_after_s is None:
            return item
        try:
            age = (self.clock.now() - datetime.fromisoformat(item["created_at"])).total_seconds()
        except (KeyError, TypeError, ValueError):
            return item
        return {**item, "stuck": age > self.stuck_after_s, "pending_seconds": round(age, 1)}

    def list_models(self) -> list[str]:
        return [i["sk"] for i in self.table.query(MODELS_PK)]

    def latest_version(self, model: str) -> int:
        meta = self.table.get(model_pk(model), META_SK)
        return int(meta["latest"]) if meta else 0

    def aliases(self, model: str) -> dict[str, dict[str, Any]]:
        """Both aliases in one query: {"champion": {...}, "challenger": {...}} (those set)."""
        return {i["sk"].removeprefix(ALIAS_PREFIX): strip_keys(i)
                for i in self.table.query(model_pk(model), ALIAS_PREFIX)}

    # -- aliases ---------------------------------------------------------------------------
    def get_alias(self, model: str, alias: str = CHAMPION) -> dict[str, Any] | None:
        item = self.table.get(model_pk(model), alias_sk(alias))
        return None if item is None else strip_keys(item)

    def champion_version(self, model: str) -> int | None:
        alias = self.get_alias(model, CHAMPION)
        return int(alias["version"]) if alias and alias.get("version") is not None else None

    def set_alias(
        self,
        model: str,
        alias: str,
        version: int | None,
        *,
        actor: str,
        reason: str,
        action: str | None = None,
        expected: int | None | str = "current",
        extra: dict[str, Any] | None = None,
        allow_breaking: bool = False,
    ) -> dict[str, Any]:
        """Move an alias with a conditional write. `expected` is the version the caller saw
        (default: read it now); if someone moved it meanwhile this raises RegistryConflict.
        A version whose input contract breaks the champion's callers is refused
        (BreakingChange) unless `allow_breaking` (a rollback goes back to what was served)."""
        if alias not in ALIASES:
            raise NotFound(f"unknown alias {alias!r}; use one of {ALIASES}", field="alias")
        audit: dict[str, Any] = {}
        metric = None  # the version's primary metric, kept on the alias for the models list
        if version is not None:
            record = self.get_version(model, version)
            metric = summaries.metric_of(record)
            if record["status"] != REGISTERED:
                raise PromotionRefused(
                    f"version {version} of {model!r} is {record['status']}: "
                    f"{'; '.join(record.get('reasons') or []) or 'not servable'}"
                )
            if action != "rollback":
                audit, extra = self._contract_gate(model, alias, version, record, allow_breaking,
                                                   extra)
        current = self.get_alias(model, alias)
        before = current.get("version") if current else None
        if expected != "current" and expected != before:
            raise RegistryConflict(
                f"{alias} of {model!r} moved from {expected} to {before} meanwhile"
            )
        pk = model_pk(model)
        now = self._now()
        item = {
            "alias": alias,
            "version": version,
            "previous": before,
            "updated_at": now,
            "updated_by": actor,
            "reason": reason,
            "metric": metric,
            **(extra or {}),
        }
        cond = AbsentOrEquals("version", before) if current is None else Equals("version", before)

        def attempt() -> None:
            ops = self._history_ops(model, action or f"set_{alias}", before, version, actor,
                                    reason, alias, extra=audit)
            self.commit(model, [Put(pk, alias_sk(alias), item, cond), *ops])

        def unless_moved() -> None:
            now_alias = self.get_alias(model, alias)
            if (now_alias or {}).get("version") != before:
                raise RegistryConflict(
                    f"{alias} of {model!r} was moved by someone else meanwhile; retry"
                ) from None
            # only the history sequence raced: take the next number and try again

        retry_on_conflict(attempt, MAX_RETRIES, f"{alias} of {model!r}: too much contention; retry",
                          on_conflict=unless_moved)
        if self.notifier is not None and alias == CHAMPION:
            self.notifier.publish(
                f"mlops-kit: {model} {action or 'champion'} -> v{version}",
                {
                    "event": action or "set_champion",
                    "model": model,
                    "from_version": before,
                    "to_version": version,
                    "actor": actor,
                    "reason": reason,
                    "at": now,
                },
            )
        return item

    def _contract_gate(self, model: str, alias: str, version: int, record: dict[str, Any],
                       allow_breaking: bool, extra: dict[str, Any] | None
                       ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """registry.contract.check_change against the champion: (history fields, alias extra
        with the fields a new champion ignores)."""
        champ = self.get_alias(model, CHAMPION) or {}
        if champ.get("version") is None or int(champ["version"]) == int(version):
            return {}, extra
        old = self._stored_version(model, int(champ["version"]))
        audit, ignored = check_change(model, alias == CHAMPION, version, record, champ, old,
                                      allow_breaking)
        return audit, ({**(extra or {}), "ignored_fields": ignored} if ignored else extra)

    def promote(self, model: str, version: int, *, actor: str, reason: str, expected="current",
                allow_breaking: bool = False):
        record = self.get_version(model, version)
        if record.get("requires_approval") and not record.get("approved"):
            raise PromotionRefused(
                f"version {version} of {model!r} needs approval first "
                f"(mlops-kit registry approve {model} {version})"
            )
        return self.set_alias(
            model, CHAMPION, version, actor=actor, reason=reason, action="promote",
            expected=expected, allow_breaking=allow_breaking,
        )

    def rollback(self, model: str, *, actor: str, reason: str = "rollback") -> dict[str, Any]:
        """Undo the last champion move: history is walked backwards, never forwards. Every
        move but a rollback pushes the version it replaced; a rollback pops one. So a second
        rollback goes to the version before, never back to the one just rolled back from."""
        current = self.champion_version(model)
        if current is None:
            raise NotFound(f"model {model!r} has no champion to roll back", field="model")
        return self.set_alias(
            model, CHAMPION, self.rollback_target(model, current), actor=actor, reason=reason,
            action="rollback", expected=current,
        )

    def rollback_target(self, model: str, current: int) -> int:
        replaced: list[int | None] = []  # the champions replaced so far, undone by rollbacks
        for event in self.history(model):
            if event.get("alias") != CHAMPION:
                continue
            if event.get("action") == "rollback":  # undo up to the version it went back to
                while replaced and replaced.pop() != event.get("to_version"):
                    pass
            else:
                replaced.append(event.get("from_version"))
        while replaced:
            previous = replaced.pop()
            if previous is None:
                break
            if int(previous) != current:
                return int(previous)
        raise NotFound(f"model {model!r} has no previous champion to roll back to",
                       field="model")

    # -- history ---------------------------------------------------------------------------
    def _history_ops(self, model, action, before, after, actor, reason, alias=None, *,
                     extra: dict[str, Any] | None = None) -> list[Put]:
        """History entries are numbered by a per-model sequence moved by conditional write, so
        history has one total order even when clocks tie or writers race."""
        pk = model_pk(model)
        seq_item = self.table.get(pk, HISTORY_SEQ_SK)
        seq = int(seq_item["seq"]) if seq_item else 0
        now = self._now()
        return [
            Put(pk, HISTORY_SEQ_SK, {"seq": seq + 1}, AbsentOrEquals("seq", seq_item and seq)),
            Put(pk, history_sk(seq + 1), {
                "seq": seq + 1, "at": now, "action": action, "alias": alias,
                "from_version": before, "to_version": after, "actor": actor, "reason": reason,
                **(extra or {}),
            }, Absent()),
        ]

    def _append_history(self, model, action, before, after, actor, reason, alias=None) -> None:
        retry_on_conflict(
            lambda: self.commit(model, self._history_ops(model, action, before, after, actor,
                                                         reason, alias)),
            MAX_RETRIES, f"history of {model!r}: too much contention; retry")

    def history(self, model: str) -> list[dict[str, Any]]:
        return [strip_keys(i) for i in self.table.query(model_pk(model), HISTORY_PREFIX)]

    # -- monitoring index ------------------------------------------------------------------
    def record_monitoring(self, model: str, entry: dict[str, Any]) -> None:
        """One compact item per monitoring run (MON#<generated_at>, an idempotent put): the
        drift and quality trends and the last drift status, read back with one query."""
        retry_on_conflict(
            lambda: self.commit(model, [Put(model_pk(model), monitor_run_sk(entry["at"]), entry)]),
            MAX_RETRIES, f"monitoring of {model!r}: too much contention; retry")

    def monitoring_runs(self, model: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The last `limit` monitoring runs, oldest first."""
        items = self.table.query(model_pk(model), MONITOR_RUN_PREFIX, reverse=True, limit=limit)
        return [strip_keys(i) for i in reversed(items)]

    # -- the summary (core/registry/summary.py) ----------------------------------------------
    def commit(self, model: str, ops: Sequence[Put | Delete], *,
               rebuild: bool = False) -> dict:
        """One attempt at a change of the model's partition: `ops` and the model's summary in
        one transaction (conditional on the summary's `rev`: a ConditionFailed means someone
        wrote first, and the caller's retry_on_conflict reads again), then the index's copy.
        Returns the summary written. `rebuild`: recompute it from the rows rather than fold."""
        pk = model_pk(model)
        stored = self.table.get(pk, SUMMARY_SK)
        if stored is None or rebuild or not summaries.current(stored):
            base = summaries.rebuild(model, self.table.query(pk), int((stored or {}).get("rev", 0)))
        else:
            base = strip_keys(stored)
        cond = Absent() if stored is None else Equals("rev", stored["rev"])
        new = {**summaries.fold(base, ops), "updated_at": self._now()}
        token, created = self._mark(model)
        self.table.transact([*ops, Put(pk, SUMMARY_SK, new, cond)])
        try:  # the index's copy, unless another writer marked the row since (it will copy)
            self.table.put(MODELS_PK, model, {"model": model, "created_at": created,
                                              "summary": summaries.compact(new)},
                           Equals("writer", token))
        except ConditionFailed:
            pass
        return new

    def _mark(self, model: str) -> tuple[str, str]:
        """Drop the index row's copy before a change: readers go to MODEL#<name>/SUMMARY until
        the writer whose mark this is puts the new copy."""
        row = self.table.get(MODELS_PK, model) or {}
        created, token = row.get("created_at") or self._now(), uuid.uuid4().hex
        self.table.put(MODELS_PK, model, {"model": model, "created_at": created, "writer": token})
        return token, created

    def rebuild_summary(self, model: str) -> dict[str, Any]:
        """Recompute the model's summary from its rows and write it (and the index's copy)."""
        return retry_on_conflict(lambda: self.commit(model, [], rebuild=True), MAX_RETRIES,
                                 f"summary of {model!r}: too much contention; retry")

    def summary(self, model: str) -> dict[str, Any]:
        """The model's summary: one read (recomputed from its rows, not written, for a model
        no change has summarised yet)."""
        pk = model_pk(model)
        item = self.table.get(pk, SUMMARY_SK)
        if item and summaries.current(item):
            return strip_keys(item)
        return summaries.rebuild(model, self.table.query(pk))

    def summaries(self) -> list[dict[str, Any]]:
        """Every model's compact summary, by name: one query of the index, plus one read per
        model whose row a writer has marked (a change in flight, or a writer that died)."""
        return [row["summary"] if row.get("summary") and not row.get("writer")
                else summaries.compact(self.summary(row["sk"]))
                for row in self.table.query(MODELS_PK)]
