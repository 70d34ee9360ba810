"""Retiring versions: archive (kept, never served again) and delete (artifacts and rows gone).

- archive: a registered or rejected version becomes `archived` (its artifacts stay, its record
  stays readable); refused for the champion or the challenger. An alias can never point at it
  again (set_alias serves `registered` versions only), so every serving path drops it.
- delete: a version's (or a whole model's) artifacts under models/<model>/ and its rows go;
  refused while served (an alias points at it). The history keeps what happened: a `delete`
  entry with who and why, in the same transaction as the rows it removes when it can. Version
  numbers are never reused (META stays), so captures and reports never name two models.

Every transaction stays in the model's partition (MODEL#<name>)."""

from __future__ import annotations

from functools import partial
from typing import Any

from mlops_kit.core import layout
from mlops_kit.core.registry.model_registry import (
    ALIASES,
    MAX_RETRIES,
    PENDING,
    Registry,
)
from mlops_kit.core.registry.optimistic import retry_on_conflict
from mlops_kit.core.table_keys import (
    MODEL_ROW_PREFIXES,
    VERSION_PREFIX,
    model_pk,
    run_key_sk,
    version_sk,
)
from mlops_kit.errors import MlopsKitError, RegistryConflict
from mlops_kit.ports import Delete, Equals, ObjectStore, Put

ARCHIVED = "archived"
TRANSACTION_LIMIT = 25  # DynamoDB's and more than Azure's (100) lower bound of a transaction


class Refused(MlopsKitError):
    """A retirement the registry will not do (it is served, or still training). The CLI exits 1."""

    status = 409
    code = "refused"


def serving_aliases(registry: Registry, model: str, version: int | None = None) -> list[str]:
    """The aliases that point at this version (or, with no version, at any version)."""
    out = []
    for name, alias in registry.aliases(model).items():
        v = alias.get("version")
        if name in ALIASES and v is not None and (version is None or int(v) == int(version)):
            out.append(f"{name} (v{int(v)})")
    return out


def archive_version(registry: Registry, model: str, version: int, *, actor: str,
                    reason: str) -> dict[str, Any]:
    """registered/rejected/failed -> archived, audited; refused while served or pending."""
    current = registry._stored_version(model, version)
    if current["status"] == ARCHIVED:
        return current
    served = serving_aliases(registry, model, version)
    if served:
        raise Refused(f"v{version} of {model!r} is served as {', '.join(served)}: promote or "
                      "set another version first (archive never stops serving)", field="version")
    if current["status"] == PENDING:
        raise Refused(f"v{version} of {model!r} is still training (pending)", field="version")
    now = registry.clock.now().isoformat()
    record = {**current, "status": ARCHIVED, "archived_from": current["status"],
              "archived_at": now, "archived_by": actor, "archived_reason": reason}
    _audited(registry, model, "archive", version, actor, reason,
             [Put(model_pk(model), version_sk(version), record, Equals("status", current["status"]))],
             expect_status=current["status"])
    return record


def delete_version(registry: Registry, store: ObjectStore, model: str, version: int, *,
                   actor: str, reason: str) -> dict[str, Any]:
    """Remove a version's artifacts and rows; refused while an alias points at it. Artifacts
    go first: a crash in between leaves a row whose artifacts are gone (delete again)."""
    current = registry._stored_version(model, version)
    served = serving_aliases(registry, model, version)
    if served:
        raise Refused(f"v{version} of {model!r} is served as {', '.join(served)}: promote "
                      "another version or clear the challenger first", field="version")
    if current["status"] == PENDING and not registry.get_version(model, version).get("stuck"):
        raise Refused(f"v{version} of {model!r} is still training (pending); delete it "
                      "once it ends or is stuck", field="version")
    removed = _delete_artifacts(store, layout.model_prefix(model, version))
    # conditional on its status: a change meanwhile fails it (and the summary's fold reads the
    # status it takes off its counts from it, core/registry/summary.py)
    ops: list[Put | Delete] = [Delete(model_pk(model), version_sk(version),
                                      Equals("status", current["status"]))]
    run_key = current.get("run_key")
    if run_key:  # the same data and spec may train again
        ops.append(Delete(model_pk(model), run_key_sk(run_key)))
    _audited(registry, model, "delete", version, actor, reason, ops,
             expect_status=current["status"])
    return {"model": model, "version": version, "deleted": True, "artifacts": removed,
            "status_was": current["status"]}


def delete_model(registry: Registry, store: ObjectStore, model: str, *, actor: str,
                 reason: str) -> dict[str, Any]:
    """Every version's artifacts and the model's rows; refused while any alias is set. The
    history (with this delete in it) and the version counter stay."""
    served = serving_aliases(registry, model)
    if served:
        raise Refused(f"{model!r} is served ({', '.join(served)}): a served model is never "
                      "deleted; clear the challenger and stop serving it first", field="model")
    versions = [int(v["version"]) for v in registry.list_versions(model)]
    pending = [v["version"] for v in registry.list_versions(model)
               if v["status"] == PENDING and not v.get("stuck")]
    if pending:
        raise Refused(f"{model!r} has versions still training: {pending}", field="model")
    removed = _delete_artifacts(store, f"{layout.MODELS}{layout.check_name(model)}/")
    pk = model_pk(model)
    rows = [Delete(pk, i["sk"], Equals("status", i.get("status")) if prefix == VERSION_PREFIX
                   else None)  # a version's delete: on its status (as delete_version's)
            for prefix in MODEL_ROW_PREFIXES for i in registry.table.query(pk, prefix)]
    for start in range(0, len(rows), TRANSACTION_LIMIT - 1):  # room for the summary
        batch = rows[start:start + TRANSACTION_LIMIT - 1]
        retry_on_conflict(partial(registry.commit, model, batch), MAX_RETRIES,
                          f"{model!r}: too much contention; retry")
    registry._append_history(model, "delete", None, None, actor,
                             f"{reason} (model deleted: versions {versions})")
    return {"model": model, "version": None, "deleted": True, "versions": versions,
            "artifacts": removed, "rows": len(rows)}


def _delete_artifacts(store: ObjectStore, prefix: str) -> int:
    keys = [o.key for o in store.list(prefix)]
    for key in keys:
        store.delete(key)
    return len(keys)


def _audited(registry: Registry, model: str, action: str, version: int, actor: str,
             reason: str, ops: list[Put | Delete], expect_status: str | None = None) -> None:
    """The change and its history entry in one transaction (only the sequence may race)."""
    def attempt() -> None:
        history = registry._history_ops(model, action, version, None, actor, reason)
        registry.commit(model, [*ops, *history])

    def unless_changed() -> None:
        row = registry.table.get(model_pk(model), version_sk(version))
        if expect_status is not None and (row is None or row.get("status") != expect_status):
            raise RegistryConflict(f"v{version} of {model!r} changed meanwhile; retry"
                                   ) from None

    retry_on_conflict(attempt, MAX_RETRIES, f"history of {model!r}: too much contention; retry",
                      on_conflict=unless_changed)
