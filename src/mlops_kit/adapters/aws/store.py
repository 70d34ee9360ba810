"""S3 object store: one bucket (S3ObjectStore). The layout router that sends each top-level
prefix to the bucket the topology gives it is cloud-neutral: adapters/routing.py."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO

from botocore.exceptions import ClientError

from mlops_kit.adapters.aws._errors import error_code, mapped
from mlops_kit.adapters.routing import PrefixRoutedStore, check_key
from mlops_kit.errors import MlopsKitError, NotFound
from mlops_kit.ports import ObjectInfo

__all__ = ["PrefixRoutedStore", "S3ObjectStore", "check_key"]

MAX_SINGLE_COPY = 5 * 1024**3  # CopyObject limit; larger objects use the managed copy


def _etag(raw: str | None) -> str:
    return (raw or "").strip('"')


class _BodyReader(io.RawIOBase):
    """A botocore StreamingBody as a raw stream, so io.BufferedReader/TextIOWrapper work on it."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        with mapped("read object"):
            data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3ObjectStore:
    def __init__(self, bucket: str, client: Callable[[], Any]) -> None:
        self.bucket = bucket
        self._client = client  # a factory: clients are created lazily (moto first, then boto3)

    @property
    def s3(self) -> Any:
        return self._client()

    def _info(self, key: str, head: Mapping[str, Any], size: int | None = None) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=int(size if size is not None else head.get("ContentLength", 0)),
            etag=_etag(head.get("ETag")),
            version_id=head.get("VersionId") if head.get("VersionId") != "null" else None,
            last_modified=head.get("LastModified"),
        )

    def put(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo:
        check_key(key)
        extra = {"ContentType": content_type} if content_type else {}
        with mapped(f"put {key!r}"):
            resp = self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
        return ObjectInfo(key=key, size=len(data), etag=_etag(resp.get("ETag")),
                          version_id=resp.get("VersionId"))

    def put_file(self, key: str, path: str) -> ObjectInfo:
        check_key(key)
        with mapped(f"upload {key!r}"):
            self.s3.upload_file(path, self.bucket, key)  # managed: multipart for big files
        return self.head(key)

    def get(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def open(self, key: str) -> BinaryIO:
        check_key(key)
        with mapped(f"object {key!r}"):
            try:
                resp = self.s3.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                self._missing_if_denied(key, exc)
                raise
        return io.BufferedReader(_BodyReader(resp["Body"]), buffer_size=1 << 20)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        check_key(key)
        if end <= start:
            return b""
        with mapped(f"object {key!r}"):
            try:
                resp = self.s3.get_object(Bucket=self.bucket, Key=key,
                                          Range=f"bytes={max(0, start)}-{end - 1}")
            except ClientError as exc:
                if error_code(exc) == "InvalidRange":  # start at or past the end
                    return b""
                self._missing_if_denied(key, exc)
                raise
            return bytes(resp["Body"].read())

    def head(self, key: str) -> ObjectInfo:
        check_key(key)
        with mapped(f"object {key!r}"):
            try:
                return self._info(key, self.s3.head_object(Bucket=self.bucket, Key=key))
            except ClientError as exc:
                self._missing_if_denied(key, exc)
                raise

    def _missing_if_denied(self, key: str, exc: ClientError) -> None:
        """S3 answers a GET/HEAD of a missing key with 403 to a caller that may not list the
        whole bucket (no function may). One listing of the key, which s3:ListBucket conditioned
        on its prefix allows (a `probes` grant in the topology), tells a missing key (NotFound,
        as on every backend: a final failure) from a real denial (left as it is: retried)."""
        if error_code(exc) not in ("403", "AccessDenied"):
            return
        try:
            missing = not self.exists(key)
        except MlopsKitError:
            return  # may not list it either: the denial stands
        if missing:
            raise NotFound(f"object {key!r} not found", field="key") from exc

    def exists(self, key: str) -> bool:
        """A one-key listing with the key as prefix, not a HEAD: S3 answers a HEAD of a missing
        key with 403 unless the caller may list the whole bucket, whereas a listing needs only
        s3:ListBucket conditioned on the prefix (the exact key, if there, sorts first)."""
        check_key(key)
        with mapped(f"list {key!r}"):
            resp = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        return any(obj.get("Key") == key for obj in resp.get("Contents", []))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        with mapped(f"list {prefix!r}"):
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(key=obj["Key"], size=int(obj["Size"]),
                                     etag=_etag(obj.get("ETag")),
                                     last_modified=obj.get("LastModified"))

    def copy(self, src: str, dst: str) -> ObjectInfo:
        return self.copy_from(self, src, dst)

    def copy_from(self, source: S3ObjectStore, src: str, dst: str) -> ObjectInfo:
        """Server-side copy (S3 never streams the bytes through us), across buckets too."""
        check_key(src), check_key(dst)
        info = source.head(src)
        with mapped(f"copy {src!r} -> {dst!r}"):
            if info.size < MAX_SINGLE_COPY:
                self.s3.copy_object(Bucket=self.bucket, Key=dst,
                                    CopySource={"Bucket": source.bucket, "Key": src})
            else:
                self.s3.copy({"Bucket": source.bucket, "Key": src}, self.bucket, dst)
        return self.head(dst)

    def delete(self, key: str) -> None:
        check_key(key)
        with mapped(f"delete {key!r}"):
            self.s3.delete_object(Bucket=self.bucket, Key=key)
