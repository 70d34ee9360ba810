"""Settings + topology -> the Azure adapters (bootstrap.build_backend builds its Context from them).

    build(settings, topology) -> ports.Adapters(store, table, validate_queue, train_queue, notifier)

Names come from the settings (set by the deployment) and default to the topology's names.
`provision` creates what a deployment would (containers, queues with their poison queues, the
alerts queue, the table): for the emulator and the tests; in Azure, the Pulumi program does."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceExistsError

from mlops_kit.adapters.azure._clients import (
    StorageAccount,
    blob_service,
    queue_service,
    table_service,
)
from mlops_kit.adapters.azure._errors import mapped
from mlops_kit.adapters.azure.notifier import QueueNotifier
from mlops_kit.adapters.azure.queue import StorageQueue
from mlops_kit.adapters.azure.store import BlobObjectStore
from mlops_kit.adapters.azure.table import AzureTable
from mlops_kit.adapters.routing import PrefixRoutedStore
from mlops_kit.ports import Adapters
from mlops_kit.topology import ARTIFACTS, DATA, Topology, default_topology

if TYPE_CHECKING:  # the serve function builds its backend from light_settings (no pydantic)
    from mlops_kit.settings import Settings


@dataclass(frozen=True)
class Names:
    """Azure resource names: containers per topology store, queues per topology queue."""

    containers: dict[str, str]
    queues: dict[str, str]
    alerts: str
    table: str

    @classmethod
    def of(cls, settings: Settings, topology: Topology) -> Names:
        containers = {st.name: st.name for st in topology.stores}
        containers[DATA] = settings.azure_data_container or containers[DATA]
        containers[ARTIFACTS] = settings.azure_artifact_container or containers[ARTIFACTS]
        queues = {q.name: q.name for q in topology.queues}
        queues["validate"] = settings.azure_validate_queue or queues["validate"]
        queues["train"] = settings.azure_train_queue or queues["train"]
        return cls(containers, queues, settings.azure_alerts_queue or topology.topic,
                   settings.azure_table_name or topology.table.name)


def account_of(settings: Settings) -> StorageAccount:
    return StorageAccount(name=settings.azure_storage_account,
                          endpoint_suffix=settings.azure_endpoint_suffix,
                          connection_string=settings.azure_connection_string,
                          client_id=settings.azure_client_id)


def build(settings: Settings, topology: Topology | None = None) -> Adapters:
    topology = topology or default_topology()
    account, names = account_of(settings), Names.of(settings, topology)
    blobs, queues, tables = (partial(f, account) for f in (blob_service, queue_service,
                                                           table_service))
    containers = {st.name: BlobObjectStore(names.containers[st.name], blobs)
                  for st in topology.stores}
    store = PrefixRoutedStore({p: containers[st.name] for st in topology.stores
                               for p in st.prefixes})

    def queue(name: str) -> StorageQueue:
        return StorageQueue(names.queues[name], queues,
                            visibility_timeout=topology.visibility_timeout(name),
                            max_receives=topology.queue(name).max_receives)

    return Adapters(store=store, table=AzureTable(names.table, tables),
                    validate_queue=queue("validate"), train_queue=queue("train"),
                    notifier=QueueNotifier(names.alerts, queues))


def provision(settings: Settings, topology: Topology | None = None) -> Names:
    """Create every container, queue (+ `<queue>-poison`), the alerts queue and the table;
    existing ones are kept."""
    topology = topology or default_topology()
    account, names = account_of(settings), Names.of(settings, topology)
    creates = [(blob_service(account).create_container, c) for c in names.containers.values()]
    for q in [*names.queues.values(), names.alerts]:
        creates.append((queue_service(account).create_queue, q))
        if q != names.alerts:
            creates.append((queue_service(account).create_queue, f"{q}-poison"))
    creates.append((table_service(account).create_table, names.table))
    for create, name in creates:
        with mapped(f"create {name!r}"):
            try:
                create(name)
            except ResourceExistsError:
                pass
    return names
