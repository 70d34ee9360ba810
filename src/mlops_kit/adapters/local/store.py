"""Filesystem object store. Keys map to files under a root; writes are atomic (temp + rename),
so a crash never leaves a half-written object. ETag is the content's md5 like S3's single-part."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from mlops_kit.errors import InvalidName, NotFound
from mlops_kit.ports import ObjectInfo

_META_SUFFIX = ".__etag__"


class FileObjectStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or "\\" in key or "\x00" in key:
            raise InvalidName(f"object key {key!r} is invalid", field="key")
        if any(part in ("", ".", "..") for part in key.split("/")) or key.endswith(_META_SUFFIX):
            raise InvalidName(f"object key {key!r} is invalid", field="key")
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise InvalidName(f"object key {key!r} escapes the store", field="key")
        return path

    def _info(self, key: str, path: Path) -> ObjectInfo:
        st = path.stat()
        meta = path.with_name(path.name + _META_SUFFIX)
        etag = meta.read_text() if meta.exists() else _md5_file(path)
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=etag,
            version_id=str(st.st_mtime_ns),
            last_modified=datetime.fromtimestamp(st.st_mtime, tz=UTC),
        )

    def _write(self, path: Path, src: BinaryIO | bytes) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        md5 = hashlib.md5(usedforsecurity=False)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(src, bytes):
                    out.write(src)
                    md5.update(src)
                else:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                        md5.update(chunk)
                out.flush()
                os.fsync(out.fileno())
            etag = md5.hexdigest()
            meta = path.with_name(path.name + _META_SUFFIX)
            meta.write_text(etag)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return etag

    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo:
        path = self._path(key)
        self._write(path, data)
        return self._info(key, path)

    def put_file(self, key: str, path: str) -> ObjectInfo:
        dst = self._path(key)
        with open(path, "rb") as src:
            self._write(dst, src)
        return self._info(key, dst)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"object {key!r} not found", field="key") from None

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return open(path, "rb")  # noqa: SIM115 - caller closes
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"object {key!r} not found", field="key") from None

    def get_range(self, key: str, start: int, end: int) -> bytes:
        with self.open(key) as f:
            f.seek(max(0, start))
            return f.read(max(0, end - max(0, start)))

    def head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"object {key!r} not found", field="key")
        return self._info(key, path)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root
        # walk only the deepest directory the prefix names
        head, _, _ = prefix.rpartition("/")
        start = base / head if head else base
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith(".tmp-") or name.endswith(_META_SUFFIX):
                    continue
                full = Path(dirpath) / name
                key = full.relative_to(base).as_posix()
                if key.startswith(prefix):
                    yield self._info(key, full)

    def copy(self, src: str, dst: str) -> ObjectInfo:
        s, d = self._path(src), self._path(dst)
        if not s.is_file():
            raise NotFound(f"object {src!r} not found", field="key")
        d.parent.mkdir(parents=True, exist_ok=True)
        with open(s, "rb") as f:
            self._write(d, f)
        return self._info(dst, d)

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        path.with_name(path.name + _META_SUFFIX).unlink(missing_ok=True)

    def local_path(self, key: str) -> Path:
        return self._path(key)


def _md5_file(path: Path) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
    return md5.hexdigest()
