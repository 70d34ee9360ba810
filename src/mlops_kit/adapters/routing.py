"""Cloud-neutral pieces every object-store adapter shares: the key rules and the layout router
that sends each top-level prefix (specs/, models/, ...) to the store the topology gives it
(two S3 buckets on AWS, two Blob containers on Azure)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import BinaryIO

from mlops_kit.errors import InvalidName
from mlops_kit.ports import ObjectInfo, ObjectStore

MAX_KEY = 1024  # S3's key limit and Azure's blob-name limit


def check_key(key: str) -> str:
    """The same key rules as the local store, so a key valid here is valid everywhere."""
    if (not key or key.startswith("/") or "\\" in key or "\x00" in key or len(key) > MAX_KEY
            or any(part in ("", ".", "..") for part in key.split("/"))):
        raise InvalidName(f"object key {key!r} is invalid", field="key")
    return key


class PrefixRoutedStore:
    """One ObjectStore over several stores: each layout prefix lives in the store the topology
    assigns. Keys outside every prefix are refused. Stores of one kind that offer
    `copy_from(source, src, dst)` copy across each other server-side."""

    def __init__(self, routes: Mapping[str, ObjectStore]) -> None:
        # longest prefix first, so a nested prefix could override its parent
        self.routes = dict(sorted(routes.items(), key=lambda kv: -len(kv[0])))

    def store_for(self, key: str) -> ObjectStore:
        for prefix, store in self.routes.items():
            if key.startswith(prefix):
                return store
        raise InvalidName(f"object key {key!r} is outside the layout "
                          f"({', '.join(sorted(self.routes))})", field="key")

    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo:
        return self.store_for(key).put(key, data, content_type=content_type)

    def put_file(self, key: str, path: str) -> ObjectInfo:
        return self.store_for(key).put_file(key, path)

    def get(self, key: str) -> bytes:
        return self.store_for(key).get(key)

    def open(self, key: str) -> BinaryIO:
        return self.store_for(key).open(key)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        return self.store_for(key).get_range(key, start, end)

    def head(self, key: str) -> ObjectInfo:
        return self.store_for(key).head(key)

    def exists(self, key: str) -> bool:
        return self.store_for(key).exists(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        hits = [p for p in self.routes if prefix.startswith(p)]
        if hits:
            yield from self.routes[hits[0]].list(prefix)
            return
        # a prefix shorter than a layout prefix ("" or "mo"): every matching route, in key order
        for p in sorted(p for p in self.routes if p.startswith(prefix)):
            yield from self.routes[p].list(p)

    def copy(self, src: str, dst: str) -> ObjectInfo:
        s, d = self.store_for(src), self.store_for(dst)
        if s is d:
            return s.copy(src, dst)
        if type(s) is type(d) and hasattr(d, "copy_from"):
            return d.copy_from(s, src, dst)
        with s.open(src) as f:  # different kinds of store: stream through
            return d.put(dst, f.read())

    def delete(self, key: str) -> None:
        self.store_for(key).delete(key)
