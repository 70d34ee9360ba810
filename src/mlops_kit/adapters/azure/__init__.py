"""The Azure backend: Blob containers, Storage Queues and a Table behind the ports.

Nothing imports this package unless the azure backend is chosen (the local backend never
pays for the Azure SDKs). Clients are lazy and cached (_clients); azure-core errors become
mlops_kit.errors (_errors)."""

try:  # one friendly check for every module below
    import azure.core  # noqa: F401
    import azure.data.tables  # noqa: F401
    import azure.storage.blob  # noqa: F401
    import azure.storage.queue  # noqa: F401
except ImportError as _exc:
    from mlops_kit.adapters.azure._sdk import missing_sdk

    raise missing_sdk(_exc) from None

from mlops_kit.adapters.azure._clients import StorageAccount, clear_clients
from mlops_kit.adapters.azure.notifier import QueueNotifier
from mlops_kit.adapters.azure.queue import StorageQueue
from mlops_kit.adapters.azure.store import BlobObjectStore
from mlops_kit.adapters.azure.table import AzureTable

__all__ = ["AzureTable", "BlobObjectStore", "QueueNotifier", "StorageAccount", "StorageQueue",
           "clear_clients"]
