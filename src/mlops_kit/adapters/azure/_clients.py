"""Azure service clients: created lazily, cached per (service, account).

In the cloud a client authenticates with DefaultAzureCredential (the function app's managed
identity; `az login` on a workstation) against the account's endpoints; no key is ever read.
A connection string is accepted for the emulator only: its endpoints must be on loopback, so
a real account key can never end up in an app setting or an environment variable."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from mlops_kit.errors import ConfigError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Bounded reads: download in 4 MiB ranges (the SDK's first range is 32 MiB by default).
BLOB_OPTIONS = {"max_single_get_size": 4 * 1024 * 1024, "max_chunk_get_size": 4 * 1024 * 1024}
COMMON = {"connection_timeout": 5, "read_timeout": 60, "retry_total": 3}


@dataclass(frozen=True)
class StorageAccount:
    """Where the storage account is. `name` (+ suffix) in the cloud, or an emulator's
    connection string (tests, `emulate`)."""

    name: str | None = None
    endpoint_suffix: str = "core.windows.net"
    connection_string: str | None = None
    client_id: str | None = None  # a user-assigned managed identity's client id (not a secret)

    def __post_init__(self) -> None:
        if self.connection_string:
            check_emulator_connection_string(self.connection_string)
        elif not self.name:
            raise ConfigError("the azure backend needs MLOPSKIT_AZURE_STORAGE_ACCOUNT (the "
                              "storage account name)", field="azure_storage_account")

    def url(self, service: str) -> str:
        return f"https://{self.name}.{service}.{self.endpoint_suffix}"


def check_emulator_connection_string(conn: str) -> None:
    parts = dict(p.split("=", 1) for p in conn.split(";") if "=" in p)
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        return
    endpoints = [v for k, v in parts.items() if k.endswith("Endpoint")]
    if not endpoints or any(urlparse(u).hostname not in LOOPBACK for u in endpoints):
        raise ConfigError(
            "MLOPSKIT_AZURE_CONNECTION_STRING is for the emulator only (endpoints on 127.0.0.1); "
            "in Azure set MLOPSKIT_AZURE_STORAGE_ACCOUNT and grant the managed identity roles",
            field="azure_connection_string")


_cache: dict[tuple[str, StorageAccount], Any] = {}
_credentials: dict[str | None, Any] = {}
_lock = threading.Lock()


def credential(client_id: str | None = None) -> Any:
    """One DefaultAzureCredential per identity: it caches its tokens, so share it."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        from mlops_kit.adapters.azure._sdk import missing_sdk

        raise missing_sdk(exc) from None
    with _lock:
        if client_id not in _credentials:
            _credentials[client_id] = DefaultAzureCredential(managed_identity_client_id=client_id)
        return _credentials[client_id]


def _client_class(kind: str) -> Any:
    if kind == "blob":
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient
    if kind == "queue":
        from azure.storage.queue import QueueServiceClient

        return QueueServiceClient
    from azure.data.tables import TableServiceClient

    return TableServiceClient


def _service(kind: str, account: StorageAccount) -> Any:
    key = (kind, account)
    found = _cache.get(key)
    if found is not None:
        return found
    cls = _client_class(kind)
    options: dict[str, Any] = {**COMMON, **(BLOB_OPTIONS if kind == "blob" else {})}
    if account.connection_string:
        client = cls.from_connection_string(account.connection_string, **options)
    else:
        client = cls(account.url(kind), credential=credential(account.client_id), **options)
    with _lock:
        return _cache.setdefault(key, client)


def blob_service(account: StorageAccount) -> Any:
    return _service("blob", account)


def queue_service(account: StorageAccount) -> Any:
    return _service("queue", account)


def table_service(account: StorageAccount) -> Any:
    return _service("table", account)


def clear_clients() -> None:
    with _lock:
        _cache.clear()
        _credentials.clear()
