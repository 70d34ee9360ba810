"""SQLite connection helper: WAL, a busy timeout, one connection per thread."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path


class SqliteDb:
    def __init__(self, path: str | Path, schema: str) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._schema = schema
        self.connect().conn.executescript(schema)

    def connect(self) -> _Tx:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            _enable_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return _Tx(conn)


def _enable_wal(conn: sqlite3.Connection, attempts: int = 100) -> None:
    """Switching to WAL takes a lock that SQLite does not wait for (the busy timeout does not
    apply), so connections opening a new database at the same moment see "database is locked".
    WAL is persistent: once any connection has set it, the others only need to see it."""
    for attempt in range(attempts):
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.01 * (1 + attempt % 10))


class _Tx:
    """`with db.connect() as conn:` runs one IMMEDIATE transaction (writers serialise)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
