"""SQLite durable queue with SQS semantics: visibility timeout, receive count, and a
dead-letter queue after `max_receives` receives. Survives restarts and killed workers: a
message being processed by a dead worker becomes visible again when its timeout expires.

A dead-lettered message is announced through `on_dead_letter` (the factory wires it to the
notifier): the local counterpart of the cloud's alarm on a DLQ's depth."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_kit.adapters.local._sqlite import SqliteDb
from mlops_kit.errors import NotFound
from mlops_kit.ports import Message

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY, queue TEXT NOT NULL, body TEXT NOT NULL, visible_at REAL NOT NULL,
  receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT, sent_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages(queue, visible_at);
"""


class SqliteQueue:
    def __init__(
        self,
        path: str | Path,
        name: str,
        *,
        visibility_timeout: int = 60,
        max_receives: int = 3,
        dlq_name: str | None = None,
        clock: Callable[[], float] = time.time,
        on_dead_letter: Callable[[Message], None] | None = None,
    ) -> None:
        self.db = SqliteDb(path, SCHEMA)
        self.name = name
        self.visibility_timeout = visibility_timeout
        self.max_receives = max_receives
        self.dlq_name = dlq_name or f"{name}-dlq"
        self._clock = clock
        self.on_dead_letter = on_dead_letter

    def send(self, body: dict[str, Any], *, delay_seconds: int = 0) -> str:
        mid = uuid.uuid4().hex
        now = self._clock()
        with self.db.connect() as conn:
            conn.execute(
                "INSERT INTO messages(id, queue, body, visible_at, sent_at) VALUES (?,?,?,?,?)",
                (mid, self.name, json.dumps(body), now + delay_seconds, now),
            )
        return mid

    def receive(
        self, max_messages: int = 1, *, visibility_timeout: int | None = None, wait_seconds: int = 0
    ) -> list[Message]:
        deadline = self._clock() + wait_seconds
        while True:
            got = self._receive_once(max_messages, visibility_timeout)
            if got or self._clock() >= deadline:
                return got
            time.sleep(0.05)

    def _receive_once(self, max_messages: int, visibility_timeout: int | None) -> list[Message]:
        timeout = self.visibility_timeout if visibility_timeout is None else visibility_timeout
        now = self._clock()
        out: list[Message] = []
        dead: list[Message] = []
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT id, body, receive_count FROM messages WHERE queue=? AND visible_at<=? "
                "ORDER BY sent_at LIMIT ?",
                (self.name, now, max(max_messages * 4, 10)),
            ).fetchall()
            for mid, body, count in rows:
                if count >= self.max_receives:
                    # Redrive: received max_receives times without being deleted -> DLQ.
                    conn.execute(
                        "UPDATE messages SET queue=?, visible_at=?, receipt=NULL WHERE id=?",
                        (self.dlq_name, now, mid),
                    )
                    dead.append(Message(mid, json.loads(body), "", count))
                    continue
                if len(out) >= max_messages:
                    break
                receipt = f"{os.getpid()}.{uuid.uuid4().hex}"  # who holds it (jobs view)
                conn.execute(
                    "UPDATE messages SET visible_at=?, receive_count=?, receipt=? WHERE id=?",
                    (now + timeout, count + 1, receipt, mid),
                )
                out.append(Message(mid, json.loads(body), receipt, count + 1))
        # announced after the commit: a notification never names a move that rolled back
        announce = self.on_dead_letter
        if announce is not None:
            for msg in dead:
                announce(msg)
        return out

    def ack(self, message: Message) -> None:
        with self.db.connect() as conn:
            conn.execute(
                "DELETE FROM messages WHERE id=? AND receipt=?", (message.id, message.receipt)
            )

    def release(self, message: Message, *, delay_seconds: int = 0) -> None:
        with self.db.connect() as conn:
            cur = conn.execute(
                "UPDATE messages SET visible_at=? WHERE id=? AND receipt=?",
                (self._clock() + delay_seconds, message.id, message.receipt),
            )
            if cur.rowcount == 0:
                raise NotFound(f"message {message.id} is no longer held by this receipt")

    def depth(self) -> int:
        with self.db.connect() as conn:
            return conn.execute(
                "SELECT COUNT(*) FROM messages WHERE queue=?", (self.name,)
            ).fetchone()[0]

    def dead_letters(self) -> list[Message]:
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT id, body, receive_count FROM messages WHERE queue=? ORDER BY sent_at",
                (self.dlq_name,),
            ).fetchall()
        return [Message(mid, json.loads(b), "", c) for mid, b, c in rows]

    def pending_messages(self) -> list[dict[str, Any]]:
        """Every message of this queue with its state, attempts and holder (`mlops-kit jobs`):
        held by a worker (running; `holder_alive` False when that process is gone, e.g. after
        kill -9, so the stuck message shows before its visibility timeout ends) or queued."""
        now = self._clock()
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT id, body, receive_count, visible_at, sent_at, receipt FROM messages "
                "WHERE queue=? ORDER BY sent_at", (self.name,)).fetchall()
        out = []
        for mid, body, count, visible_at, sent_at, receipt in rows:
            held = bool(receipt) and visible_at > now
            pid = _holder_pid(receipt) if held else None
            out.append({"id": mid, "body": json.loads(body), "attempts": count,
                        "state": "running" if held else "queued",
                        "age_seconds": round(now - sent_at, 1),
                        "visible_in_s": round(max(0.0, visible_at - now), 1),
                        "holder_pid": pid,
                        "holder_alive": None if pid is None else _alive(pid)})
        return out


def _holder_pid(receipt: str) -> int | None:
    head, dot, _ = receipt.partition(".")
    return int(head) if dot and head.isdigit() else None


def _alive(pid: int) -> bool:
    """Is this process still there (on this machine: the local backend's workers are)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
