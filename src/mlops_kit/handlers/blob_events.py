"""The objects a validate-queue message announces.

Four shapes reach the validate queue:
- an S3 event notification (AWS: the SQS message body; `Records` of `ObjectCreated:*` events,
  keys URL-encoded; S3's `s3:TestEvent` when a target is configured announces nothing);
- an Event Grid event in the Event Grid schema (what the Blob Storage system topic's
  subscription writes to a storage queue: one event per message, base64 JSON), or a list of
  them; `eventType` Microsoft.Storage.BlobCreated, `subject`
  /blobServices/default/containers/<container>/blobs/<blob name>;
- the same event in the CloudEvents 1.0 schema (`type`, `subject` without the leading slash),
  the subscription's other delivery schema;
- our own {"key": ..., "etag": ..., "version_id": ...} (the local runtime, a manual re-drive).

The blob name is taken from `subject`, where it is not URL-encoded (`data.url` is). The
event's `eTag` is the service's ETag, not the store's content etag (ObjectInfo.etag, the
md5), so it is not passed on: the use case reads the object's etag itself. Other event types
(BlobDeleted, ...) and other containers announce nothing. Anything else is a final failure:
retrying cannot make a malformed message readable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from mlops_kit.errors import ValidationError

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
_SUBJECT = re.compile(r"^/?blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<key>.+)$")


@dataclass(frozen=True)
class CreatedObject:
    key: str
    etag: str | None = None  # the store's etag, when the message carries it (our own bodies)
    version_id: str | None = None
    event_id: str | None = None


def _load(body: Any) -> Any:
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError("message: not UTF-8 text", field="message") from None
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            raise ValidationError(f"message: not JSON ({body[:60]!r})", field="message") from None
    return body


def _event(event: dict[str, Any], containers: Collection[str] | None) -> list[CreatedObject]:
    kind = event.get("eventType") or event.get("type")
    if kind != BLOB_CREATED:
        return []  # a subscription delivers only BlobCreated; anything else starts nothing
    m = _SUBJECT.fullmatch(str(event.get("subject") or ""))
    if m is None:
        raise ValidationError(f"message: a BlobCreated event without a blob subject "
                              f"({str(event.get('subject'))[:80]!r})", field="subject")
    if containers is not None and m.group("container") not in containers:
        return []
    data = event.get("data")
    if not isinstance(data, dict):
        data = {}
    return [CreatedObject(m.group("key"), None, data.get("versionId"), event.get("id"))]


def created_objects(body: Any, *, containers: Collection[str] | None = None
                    ) -> list[CreatedObject]:
    """The objects `body` (str, bytes or decoded JSON) announces; `containers` limits events
    to those containers (the data container). Raises ValidationError for a body that is none
    of the shapes above."""
    data = _load(body)
    events = data if isinstance(data, list) else [data]
    out: list[CreatedObject] = []
    for item in events:
        if not isinstance(item, dict):
            raise ValidationError("message: not an event object", field="message")
        if item.get("Event") == "s3:TestEvent":
            continue  # S3 checks a new notification target with it: nothing was created
        if isinstance(item.get("Records"), list):
            out.extend(_s3_records(item["Records"]))
        elif "key" in item and isinstance(item["key"], str):
            out.append(CreatedObject(item["key"], item.get("etag"), item.get("version_id")))
        elif "eventType" in item or "specversion" in item:
            out.extend(_event(item, containers))
        else:
            raise ValidationError("message: neither an S3 notification, an Event Grid event nor "
                                  f"an object key (fields: {sorted(item)[:8]})", field="message")
    return out


def _s3_records(records: list[Any]) -> list[CreatedObject]:
    """An S3 event notification (the SQS message body on AWS): ObjectCreated records only,
    keys URL-decoded as S3 encodes them (a space is '+'); S3's eTag is the store's etag."""
    out: list[CreatedObject] = []
    for r in records:
        if not isinstance(r, dict) or not str(r.get("eventName", "")).startswith("ObjectCreated"):
            continue
        obj = (r.get("s3") or {}).get("object") if isinstance(r.get("s3"), dict) else None
        if not isinstance(obj, dict) or not isinstance(obj.get("key"), str):
            raise ValidationError("message: an S3 record without an object key",
                                  field="message")
        out.append(CreatedObject(unquote_plus(obj["key"]), obj.get("eTag"), obj.get("versionId")))
    return out
