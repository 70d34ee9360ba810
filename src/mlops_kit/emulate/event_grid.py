"""The emulator's stand-in for the Event Grid system topic of the storage account and its
subscription (BlobCreated, subject prefix-filtered, storage queue destination): Azurite emits
no events, so the data container's listing is polled and every new blob, or new write of a
blob (a new ETag), under a trigger's prefix becomes one Event Grid schema event, base64 JSON,
on the trigger's queue, as Event Grid writes it.

Differences from Event Grid, on purpose or not: delivery is up to one poll interval late;
two writes of the same blob between two polls are one event (Event Grid sends two); blobs that
exist when the poller starts are not announced (Event Grid announces only what is written
after the subscription exists)."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("mlops_kit.emulate.azure")

TOPIC = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mlops-kit-emulate/"
         "providers/Microsoft.Storage/storageAccounts/{account}")


def blob_created_event(account: str, container: str, name: str, props: Any, url: str
                       ) -> dict[str, Any]:
    """A Microsoft.Storage.BlobCreated event in the Event Grid schema."""
    request_id = str(uuid.uuid4())
    settings = getattr(props, "content_settings", None)
    return {
        "topic": TOPIC.format(account=account),
        "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
        "eventType": "Microsoft.Storage.BlobCreated",
        "id": str(uuid.uuid4()),
        "data": {
            "api": "PutBlob", "clientRequestId": str(uuid.uuid4()), "requestId": request_id,
            "eTag": str(props.etag or "").strip('"'),
            "contentType": getattr(settings, "content_type", None) or "application/octet-stream",
            "contentLength": int(props.size or 0), "blobType": "BlockBlob", "url": url,
            "sequencer": f"{int(datetime.now(UTC).timestamp() * 1e6):032x}",
            "storageDiagnostics": {"batchId": str(uuid.uuid4())},
        },
        "dataVersion": "", "metadataVersion": "1",
        "eventTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }


class BlobCreatedPoller:
    """`triggers`: (prefix, queue name) pairs of one container (the topology's object
    triggers). `prime()` first, so what exists already is not announced."""

    def __init__(self, blobs: Any, queues: Any, account: str, container: str,
                 triggers: list[tuple[str, str]]) -> None:
        self.container_client = blobs.get_container_client(container)
        self.queues = {q: queues.get_queue_client(q) for _, q in triggers}
        self.account, self.container, self.triggers = account, container, triggers
        self.seen: dict[str, str] = {}
        self.delivered = 0

    def _listing(self) -> dict[str, Any]:
        out = {}
        for prefix, _ in self.triggers:
            for props in self.container_client.list_blobs(name_starts_with=prefix):
                out[props.name] = props
        return out

    def prime(self) -> None:
        self.seen = {name: str(p.etag) for name, p in self._listing().items()}

    def poll_once(self) -> int:
        """Announce what was written since the last poll; the number of events sent."""
        listing = self._listing()
        sent = 0
        for name, props in sorted(listing.items(), key=lambda kv: kv[1].last_modified):
            if self.seen.get(name) == str(props.etag):
                continue
            queue = next(q for prefix, q in self.triggers if name.startswith(prefix))
            url = self.container_client.get_blob_client(name).url
            event = blob_created_event(self.account, self.container, name, props, url)
            self.queues[queue].send_message(
                base64.b64encode(json.dumps(event).encode()).decode(), time_to_live=-1)
            self.seen[name] = str(props.etag)
            sent += 1
            log.info("event grid: BlobCreated %s -> %s", name, queue)
        for name in set(self.seen) - set(listing):
            del self.seen[name]  # deleted: writing it again is a new BlobCreated
        self.delivered += sent
        return sent
