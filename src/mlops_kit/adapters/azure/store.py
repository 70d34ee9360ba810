"""Blob object store: one container (BlobObjectStore). Two containers (data / artifacts) sit
behind the cloud-neutral PrefixRoutedStore (adapters/routing.py), like the two S3 buckets.

`ObjectInfo.etag` is the content's md5 (hex), as on S3 single-part uploads and locally: every
write here sends the md5 (x-ms-blob-content-md5), and Azure keeps it through copies. A blob
uploaded in blocks by another client has no md5; its Azure ETag stands in (as S3's multipart
ETag does). Conditional puts (`if_absent`, `if_match`) use Azure's own ETag underneath, so a
condition is checked by the service at write time, never only by a read before it."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from azure.core import MatchConditions
from azure.storage.blob import ContentSettings

from mlops_kit.adapters.azure._errors import mapped
from mlops_kit.adapters.routing import check_key
from mlops_kit.errors import ConditionFailed, NotFound, StorageError
from mlops_kit.ports import ObjectInfo

COPY_TIMEOUT_S = 3600.0  # an asynchronous server-side copy of a big blob in another account


def content_etag(props: Any) -> str:
    """The md5 (hex) Azure keeps for the blob, or its ETag when it has none."""
    settings = getattr(props, "content_settings", None)
    md5 = getattr(settings, "content_md5", None)
    if md5:
        return bytes(md5).hex()
    return str(props.etag or "").strip('"')


def _md5_file(path: str) -> bytes:
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
    return md5.digest()


class _DownloadReader(io.RawIOBase):
    """A StorageStreamDownloader as a raw stream (it fetches 4 MiB ranges as it is read)."""

    def __init__(self, downloader: Any, what: str) -> None:
        self._dl = downloader
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        with mapped(f"read {self._what}"):
            data = self._dl.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class BlobObjectStore:
    def __init__(self, container: str, service: Callable[[], Any]) -> None:
        self.container = container
        self._service = service  # a factory: the client is created on first use

    def _blob(self, key: str) -> Any:
        return self._service().get_blob_client(self.container, check_key(key))

    def _info(self, key: str, props: Any) -> ObjectInfo:
        return ObjectInfo(key=key, size=int(props.size), etag=content_etag(props),
                          version_id=getattr(props, "version_id", None),
                          last_modified=props.last_modified)

    def _conditions(self, blob: Any, key: str, if_absent: bool, if_match: str | None) -> dict:
        """Azure conditions for a put: create-only (If-None-Match: *), or If-Match on the Azure
        ETag of the blob whose md5 the caller saw (the write fails if it changed since)."""
        if if_absent:
            return {"overwrite": False}
        if if_match is None:
            return {"overwrite": True}
        try:
            with mapped(f"object {key!r}"):
                props = blob.get_blob_properties()
        except NotFound:
            raise ConditionFailed(f"put {key!r}: the object does not exist") from None
        if content_etag(props) != if_match.strip('"'):
            raise ConditionFailed(f"put {key!r}: the object changed (etag {content_etag(props)})")
        return {"overwrite": True, "etag": props.etag,
                "match_condition": MatchConditions.IfNotModified}

    def put(self, key: str, data: bytes, *, content_type: str | None = None,
            if_absent: bool = False, if_match: str | None = None) -> ObjectInfo:
        """`if_absent`: create-only; `if_match`: only over the object whose etag the caller saw.
        Either raises ConditionFailed when it does not hold."""
        blob = self._blob(key)
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        cond = self._conditions(blob, key, if_absent, if_match)
        settings = ContentSettings(content_type=content_type, content_md5=bytearray(md5))
        with mapped(f"put {key!r}"):
            resp = blob.upload_blob(data, content_settings=settings, **cond)
        return ObjectInfo(key=key, size=len(data), etag=md5.hex(), version_id=resp.get("version_id"),
                          last_modified=resp.get("last_modified"))

    def put_file(self, key: str, path: str) -> ObjectInfo:
        blob = self._blob(key)
        md5 = _md5_file(path)  # one extra local read: the md5 must be known before the commit
        settings = ContentSettings(content_md5=bytearray(md5))
        with open(path, "rb") as f, mapped(f"upload {key!r}"):
            # blocks of 4 MiB (the SDK default) past 64 MiB; two in flight
            resp = blob.upload_blob(f, length=os.path.getsize(path), overwrite=True,
                                    content_settings=settings, max_concurrency=2)
        return ObjectInfo(key=key, size=os.path.getsize(path), etag=md5.hex(),
                          version_id=resp.get("version_id"), last_modified=resp.get("last_modified"))

    def get(self, key: str) -> bytes:
        blob = self._blob(key)
        with mapped(f"object {key!r}"):
            return blob.download_blob().readall()

    def open(self, key: str) -> BinaryIO:
        blob = self._blob(key)
        with mapped(f"object {key!r}"):
            downloader = blob.download_blob()  # the first range: NotFound is raised here
        return io.BufferedReader(_DownloadReader(downloader, repr(key)), buffer_size=1 << 20)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        blob = self._blob(key)
        if end <= start:
            return b""
        with mapped(f"object {key!r}"):
            size = blob.get_blob_properties().size
            if start >= size:
                return b""
            return bytes(blob.download_blob(offset=max(0, start),
                                            length=min(end, size) - max(0, start)).readall())

    def head(self, key: str) -> ObjectInfo:
        blob = self._blob(key)
        with mapped(f"object {key!r}"):
            return self._info(key, blob.get_blob_properties())

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except NotFound:
            return False
        return True

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        container = self._service().get_container_client(self.container)
        with mapped(f"list {prefix!r}"):
            for props in container.list_blobs(name_starts_with=prefix or None):
                yield self._info(props.name, props)

    def copy(self, src: str, dst: str) -> ObjectInfo:
        return self.copy_from(self, src, dst)

    def copy_from(self, source: BlobObjectStore, src: str, dst: str) -> ObjectInfo:
        """Server-side copy (the bytes never pass through us), across containers too. The copy
        is pinned to the source version we saw (its ETag); same-account copies finish at once,
        others are polled until done."""
        src_blob, dst_blob = source._blob(src), self._blob(dst)
        with mapped(f"object {src!r}"):
            props = src_blob.get_blob_properties()
        with mapped(f"copy {src!r} -> {dst!r}"):
            resp = dst_blob.start_copy_from_url(src_blob.url, source_etag=props.etag,
                                                source_match_condition=MatchConditions.IfNotModified)
            status, delay, deadline = resp.get("copy_status"), 0.05, time.monotonic() + COPY_TIMEOUT_S
            while status == "pending" and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                status = dst_blob.get_blob_properties().copy.status
        if status != "success":
            raise StorageError(f"copy {src!r} -> {dst!r} ended {status}")
        return self.head(dst)

    def delete(self, key: str) -> None:
        blob = self._blob(key)
        try:
            with mapped(f"delete {key!r}"):
                blob.delete_blob(delete_snapshots="include")
        except NotFound:
            pass  # deleting a missing object is not an error (as on S3 and locally)

