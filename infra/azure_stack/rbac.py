"""Who may touch what on Azure, rendered from the topology (the same grants the AWS policies are
rendered from): one role assignment per (function identity, scope, role), scoped to the
container / queue / table, and for blobs narrowed by an Azure ABAC condition to what the grants
say: reads and writes by blob path, listings by the request's prefix, never a delete.
Pure (no pulumi): the program resolves scopes to resource ids.

Built-in role definition ids are global constants published by Azure
(learn.microsoft.com/azure/role-based-access-control/built-in-roles)."""

from __future__ import annotations

from dataclasses import dataclass

from mlops_kit.topology import Topology

ROLES = {
    "blob_reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",  # Storage Blob Data Reader
    "blob_contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",  # Storage Blob Data Contributor
    "queue_reader": "19e7f393-937e-4f77-808e-94535e297925",  # Storage Queue Data Reader
    "queue_processor": "8a0f0c08-91a1-4084-bc3d-661d67233fed",  # Queue Data Message Processor
    "queue_sender": "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",  # Queue Data Message Sender
    "table_reader": "76199698-9eea-4c19-bc75-cec21354c6b6",  # Storage Table Data Reader
    "table_contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",  # Table Data Contributor
    "metrics_publisher": "3913510d-42f4-4e42-8a64-420c390055eb",  # Monitoring Metrics Publisher
}
_BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"
BLOB_READ_ACTION = f"{_BLOBS}/read"
BLOB_WRITE_ACTIONS = (f"{_BLOBS}/write", f"{_BLOBS}/add/action")
# What Storage Blob Data Contributor adds beyond read and write: never granted (no AWS policy
# grants s3:DeleteObject; move/action is the hierarchical-namespace rename).
BLOB_DENIED_ACTIONS = (f"{_BLOBS}/delete", f"{_BLOBS}/move/action")
PATH = f"@Resource[{_BLOBS}:path]"
# List Blobs (the Blob.List suboperation of blobs/read) names no blob: only the request's
# prefix can narrow it (learn.microsoft.com/azure/storage/blobs/storage-auth-abac-attributes).
PREFIX = f"@Request[{_BLOBS}:prefix]"
LIST = "SubOperationMatches{'Blob.List'}"


@dataclass(frozen=True)
class Grant:
    function: str
    kind: str  # container | queue | table | component
    target: str  # store name, queue name, "table" or "insights"
    role: str  # a key of ROLES
    condition: str | None = None  # ABAC condition (version 2.0)


def _none_of(*guards: str) -> str:
    """No operation matching any guard (the documented form: `!(ActionMatches{...}) AND ...`)."""
    return " AND ".join(f"!({g})" for g in guards)


def _clause(negated: str, allowed: list[str]) -> str:
    """Operations outside `negated` are untouched; those it excludes are allowed only where one
    of `allowed` holds (none: never)."""
    if not allowed:
        return f"({negated})"
    return f"(({negated}) OR ({' OR '.join(allowed)}))"


def _paths(globs: set[str]) -> list[str]:
    """Blob paths matching a grant's prefix + glob (StringLike: `*` spans `/`, as in IAM)."""
    return [f"{PATH} StringLike '{g}'" for g in sorted(globs)]


def _action(action: str) -> str:
    return f"ActionMatches{{'{action}'}}"


def blob_condition(read: set[str], write: set[str], lists: set[str]) -> str:
    """The ABAC condition of one function's role on one container, from its grants: reads of
    blobs matching `read`, writes matching `write`, listings whose prefix starts with one of
    `lists` (learn.microsoft.com/azure/storage/blobs/storage-auth-abac-examples: "Read or list
    blobs in named folders"), never a delete."""
    clauses = [
        _clause(_none_of(f"{_action(BLOB_READ_ACTION)} AND NOT {LIST}"), _paths(read | write)),
        _clause(_none_of(f"{_action(BLOB_READ_ACTION)} AND {LIST}"),
                [f"{PREFIX} StringStartsWith '{p}'" for p in sorted(lists)])]
    if write:
        clauses.append(_clause(_none_of(*map(_action, BLOB_WRITE_ACTIONS)), _paths(write)))
        clauses.append(_clause(_none_of(*map(_action, BLOB_DENIED_ACTIONS)), []))
    return " AND ".join(clauses)


def grants(topology: Topology) -> list[Grant]:
    """The role assignments of every function, least privilege, deterministic order."""
    out: list[Grant] = []
    for fn in topology.functions:
        by_store: dict[str, dict[str, set[str]]] = {}
        for g in fn.stores:
            kinds = by_store.setdefault(g.store, {"read": set(), "write": set(), "list": set()})
            if g.access in ("read", "readwrite"):
                kinds["read"].add(g.prefix + g.match)
            if g.access in ("write", "readwrite"):
                kinds["write"].add(g.prefix + g.match)
            if g.lists:  # probes are reads on Azure (BlobObjectStore.exists gets properties)
                kinds["list"].add(g.prefix)
        for store, kinds in sorted(by_store.items()):
            role = "blob_contributor" if kinds["write"] else "blob_reader"
            out.append(Grant(fn.name, "container", store, role,
                             blob_condition(kinds["read"], kinds["write"], kinds["list"])))
        for q in topology.consumes(fn.name):
            # a queue trigger needs both (learn.microsoft.com/azure/azure-functions/
            # functions-bindings-storage-queue#grant-permission-to-the-identity): Reader lets
            # the host and the scale controller peek and count the messages
            out.append(Grant(fn.name, "queue", q, "queue_reader"))
            out.append(Grant(fn.name, "queue", q, "queue_processor"))
            out.append(Grant(fn.name, "queue", f"{q}-poison", "queue_sender"))
        for q in fn.sends_to:
            out.append(Grant(fn.name, "queue", q, "queue_sender"))
        if fn.publishes:
            out.append(Grant(fn.name, "queue", topology.topic, "queue_sender"))
        if fn.table:
            writes = {"put", "delete"} & set(fn.table)
            out.append(Grant(fn.name, "table", topology.table.name,
                             "table_contributor" if writes else "table_reader"))
        out.append(Grant(fn.name, "component", "insights", "metrics_publisher"))
    return out
