"""Reading datasets: the one place that turns an uploaded object into rows."""

from __future__ import annotations

import hashlib
from typing import BinaryIO


class HashingReader:
    """Wraps a binary stream; sha256 of everything read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
        self.raw.close()

    def drain(self) -> str:
        while self.read(1 << 20):
            pass
        return self.sha.hexdigest()
