"""The embedded backend: filesystem object store, SQLite key-value table and durable queue."""

from mlops_kit.adapters.local.notifier import FileNotifier
from mlops_kit.adapters.local.queue import SqliteQueue
from mlops_kit.adapters.local.store import FileObjectStore
from mlops_kit.adapters.local.table import SqliteTable

__all__ = ["FileNotifier", "FileObjectStore", "SqliteQueue", "SqliteTable"]
