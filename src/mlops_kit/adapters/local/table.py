"""SQLite key-value table with DynamoDB-like semantics: (pk, sk) items, sorted sk, conditional
writes and all-or-nothing transactions."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlops_kit.adapters.conditions import check as _check
from mlops_kit.adapters.local._sqlite import SqliteDb
from mlops_kit.ports import Condition, Delete, Put

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
  pk TEXT NOT NULL, sk TEXT NOT NULL, item TEXT NOT NULL, PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
"""


class SqliteTable:
    def __init__(self, path: str | Path) -> None:
        self.db = SqliteDb(path, SCHEMA)

    @staticmethod
    def _read(conn: sqlite3.Connection, pk: str, sk: str) -> dict | None:
        row = conn.execute("SELECT item FROM items WHERE pk=? AND sk=?", (pk, sk)).fetchone()
        return json.loads(row[0]) if row else None

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            item = self._read(conn, pk, sk)
        return {**item, "pk": pk, "sk": sk} if item is not None else None

    def put(self, pk: str, sk: str, item: dict[str, Any], condition: Condition = None) -> None:
        self.transact([Put(pk, sk, item, condition)])

    def delete(self, pk: str, sk: str, condition: Condition = None) -> None:
        self.transact([Delete(pk, sk, condition)])

    def query(
        self, pk: str, sk_prefix: str = "", *, reverse: bool = False, limit: int | None = None
    ) -> list[dict[str, Any]]:
        order = "DESC" if reverse else "ASC"
        sql = f"SELECT sk, item FROM items WHERE pk=? AND sk >= ? AND sk < ? ORDER BY sk {order}"  # noqa: S608
        hi = sk_prefix + "\U0010ffff"
        params: list = [pk, sk_prefix, hi]
        if limit:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self.db.connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [{**json.loads(item), "pk": pk, "sk": sk} for sk, item in rows]

    def transact(self, ops: Sequence[Put | Delete]) -> None:
        with self.db.connect() as conn:
            for op in ops:
                _check(self._read(conn, op.pk, op.sk), op.condition, op.pk, op.sk)
            for op in ops:
                if isinstance(op, Put):
                    data = {k: v for k, v in op.item.items() if k not in ("pk", "sk")}
                    conn.execute(
                        "INSERT OR REPLACE INTO items(pk, sk, item) VALUES (?,?,?)",
                        (op.pk, op.sk, json.dumps(data, sort_keys=True, default=str)),
                    )
                else:
                    conn.execute("DELETE FROM items WHERE pk=? AND sk=?", (op.pk, op.sk))
