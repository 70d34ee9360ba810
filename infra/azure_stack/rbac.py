"""Who may touch what on Azure, rendered from the topology (the same grants the AWS policies are
rendered from): one role assignment per (function identity, scope, role), scoped to the
container / queue / table, and for blob writes narrowed to the grant's prefix by an Azure ABAC
condition. Pure (no pulumi): the program resolves scopes to resource ids.

Built-in role definition ids are global constants published by Azure
(learn.microsoft.com/azure/role-based-access-control/built-in-roles)."""

from __future__ import annotations

from dataclasses import dataclass

from mlops_kit.topology import Topology

ROLES = {
    "blob_reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",  # Storage Blob Data Reader
    "blob_contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",  # Storage Blob Data Contributor
    "queue_processor": "8a0f0c08-91a1-4084-bc3d-661d67233fed",  # Queue Data Message Processor
    "queue_sender": "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",  # Queue Data Message Sender
    "table_reader": "76199698-9eea-4c19-bc75-cec21354c6b6",  # Storage Table Data Reader
    "table_contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",  # Table Data Contributor
    "metrics_publisher": "3913510d-42f4-4e42-8a64-420c390055eb",  # Monitoring Metrics Publisher
}
BLOB_WRITE_ACTIONS = (
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
)
BLOB_READ_ACTION = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
PATH = "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers/blobs:path]"


@dataclass(frozen=True)
class Grant:
    function: str
    kind: str  # container | queue | table | component
    target: str  # store name, queue name, "table" or "insights"
    role: str  # a key of ROLES
    condition: str | None = None  # ABAC condition (version 2.0)


def _only_under(prefixes: list[str], actions: tuple[str, ...]) -> str:
    """Allow `actions` only on blobs whose path starts with one of `prefixes`; every other
    action the role grants is untouched."""
    not_actions = " AND ".join(f"!(ActionMatches{{'{a}'}})" for a in actions)
    paths = " OR ".join(f"{PATH} StringStartsWith '{p}'" for p in sorted(prefixes))
    return f"(({not_actions}) OR ({paths}))"


def grants(topology: Topology) -> list[Grant]:
    """The role assignments of every function, least privilege, deterministic order."""
    out: list[Grant] = []
    for fn in topology.functions:
        by_store: dict[str, dict[str, list[str]]] = {}
        for g in fn.stores:
            kinds = by_store.setdefault(g.store, {"read": [], "write": []})
            if g.access in ("read", "readwrite"):
                kinds["read"].append(g.prefix)
            if g.access in ("write", "readwrite"):
                kinds["write"].append(g.prefix)
        for store, kinds in sorted(by_store.items()):
            if kinds["write"]:
                # Contributor narrowed: writes/deletes only under the written prefixes; reads
                # only under the prefixes read or written (a container-wide read is not granted)
                readable = sorted(set(kinds["read"]) | set(kinds["write"]))
                cond = (f"{_only_under(kinds['write'], BLOB_WRITE_ACTIONS)} AND "
                        f"{_only_under(readable, (BLOB_READ_ACTION,))}")
                out.append(Grant(fn.name, "container", store, "blob_contributor", cond))
            elif kinds["read"]:
                out.append(Grant(fn.name, "container", store, "blob_reader",
                                 _only_under(kinds["read"], (BLOB_READ_ACTION,))))
        for q in topology.consumes(fn.name):
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
