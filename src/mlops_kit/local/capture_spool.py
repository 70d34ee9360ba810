"""Durable capture for the self-hosted server (`capture_durable`, opt-in): every captured
request is appended to a local spool file and fsync'ed before its response is sent, so even a
SIGKILL loses no captured row; a spool is replayed into the store when a worker starts.

- One spool file per worker, locked (flock) while its worker lives; a file nobody holds is an
  orphan of a dead worker, replayed (each record is a complete `.cap` object) then removed by
  whichever worker locks it first.
- A flush seals the current file and opens a new one; the sealed files are removed once a
  flush leaves nothing kept for retry. A crash between a store write and that removal replays
  rows already written: delivery is at-least-once (row ids make duplicates visible).

The cost is an encode (~50 us) and an fsync per request: it is for deployments that value every
row over latency."""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mlops_kit.core.capture import codec
from mlops_kit.core.capture.buffer import CaptureBuffer, epoch_us
from mlops_kit.core.capture.codec import RequestBlock
from mlops_kit.core.layout import capture_object_key
from mlops_kit.ports import Clock, ObjectStore

log = logging.getLogger("mlops_kit.local.capture_spool")
_HEAD = struct.Struct("<II")  # model name length, object length
SPOOL_DIR = "capture-spool"


def _open_locked(folder: Path) -> tuple[Path, BinaryIO]:
    path = folder / f"{uuid.uuid4().hex}.spool"
    f = open(path, "ab")  # noqa: SIM115 - held for the worker's life (or until sealed)
    fcntl.flock(f, fcntl.LOCK_EX)
    return path, f


class SpooledCaptureBuffer(CaptureBuffer):
    def __init__(self, store: ObjectStore, clock: Clock, folder: Path, **kw) -> None:
        super().__init__(store, clock, **kw)
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._spool_lock = threading.Lock()  # the file; the buffer's own lock guards the rows
        self._flush_lock = threading.RLock()  # type: ignore[assignment]  # held around the base's flush
        self.replayed_rows = self.replay_orphans()
        self._path, self._file = _open_locked(self.folder)
        self._sealed: list[tuple[Path, BinaryIO]] = []

    def add(self, model: str, block: RequestBlock, at: datetime) -> None:
        body = codec.encode(model, [block])
        name = model.encode()
        with self._spool_lock:  # one writer per file; before the response (the caller answers after)
            self._file.write(_HEAD.pack(len(name), len(body)) + name + body)
            self._file.flush()
            os.fsync(self._file.fileno())
        super().add(model, block, at)

    def capture(self, model: str, request_id: str, at: datetime | None, version: int, role: str,
                latency_ms: float, feed: dict[str, np.ndarray], labels: np.ndarray,
                probabilities: np.ndarray | None) -> None:
        # the base appends straight to its column buffers; here each request is spooled first
        at = self.clock.now() if at is None else at
        self.add(model, RequestBlock(request_id, epoch_us(at), version, role == "shadow",
                                     latency_ms, feed, labels, probabilities), at)

    def flush(self, *, counters: bool = True) -> int:
        with self._flush_lock:
            with self._spool_lock:  # rows added from here on are in the new file (and maybe
                self._sealed.append((self._path, self._file))  # in this flush too)
                self._path, self._file = _open_locked(self.folder)
            written = super().flush(counters=counters)
            if not self.pending_rows:
                with self._spool_lock:
                    sealed, self._sealed = self._sealed, []
                for path, f in sealed:
                    path.unlink(missing_ok=True)
                    f.close()
            return written

    def close(self) -> None:
        """After the final flush: an empty spool is removed, a non-empty one is left for the
        next start to replay."""
        for path, f in [*self._sealed, (self._path, self._file)]:
            if f.tell() == 0 or not self.pending_rows:
                path.unlink(missing_ok=True)
            f.close()

    def replay_orphans(self) -> int:
        """Write the records of every spool file no live worker holds; returns the rows."""
        rows = 0
        for path in sorted(self.folder.glob("*.spool")):
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                continue
            with f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live worker's
                data = f.read()
                rows += self._replay(data, path)
                path.unlink(missing_ok=True)
        if rows:
            log.warning("capture spool: %d rows replayed from workers that did not stop", rows)
        return rows

    def _replay(self, data: bytes, path: Path) -> int:
        pos, rows, now = 0, 0, self.clock.now()
        while pos + _HEAD.size <= len(data):
            n_name, n_body = _HEAD.unpack_from(data, pos)
            end = pos + _HEAD.size + n_name + n_body
            if end > len(data):
                break  # a record cut short by the crash: its response was never sent
            model = data[pos + _HEAD.size:pos + _HEAD.size + n_name].decode()
            body = data[pos + _HEAD.size + n_name:end]
            key = capture_object_key(model, now, uuid.uuid4().hex[:8], codec.SUFFIX)
            self.store.put(key, body, content_type="application/octet-stream")
            rows += codec.decode(body).n
            pos = end
        return rows
