"""Azure Table key-value table: (pk, sk) items, conditional writes, single-partition transactions.

Azure Table conditions are ETag-only (create-only, or If-Match on the ETag), so a condition on
an attribute is checked on a fresh read and the write is pinned to what was read: `create` if
the item was absent, `update`/`delete` with If-Match on its ETag otherwise. If the item changed
in between, the service refuses the whole (batched) write and we read and decide again: the
result is the same as the attribute condition checked by the service at write time.

Encoding:
- Keys: PartitionKey / RowKey are the hex of the UTF-8 key. Azure forbids `#`, `/`, `?`, `\\`
  and control characters in keys, which our keys use (`MODEL#churn`, `VALIDATED#datasets/...`);
  hex keeps the byte order, so a query sorts like SQLite and DynamoDB, and a key prefix is a
  RowKey range. The readable `pk` and `sk` are stored as properties too.
- Values: one JSON document, split over string properties d0, d1, ... (Azure caps a string
  property at 64 KiB). Items are capped at 400 KB like DynamoDB's, so one item fits everywhere.
- Transactions: one partition and at most 100 operations (Azure's rules); asking for more is
  a programming error (CrossPartitionTransaction), refused before any request.
- `query(reverse=True)`: Azure scans ascending only, so the prefix range is read and reversed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import UpdateMode

from mlops_kit.adapters.azure._errors import mapped
from mlops_kit.adapters.conditions import check
from mlops_kit.errors import ConditionFailed, InvalidName, NotFound, StorageError, TransientError
from mlops_kit.ports import Condition, Delete, Put

MAX_TRANSACT = 100
MAX_KEY_BYTES = 512  # RowKey/PartitionKey hold 1 KiB: 512 bytes of key as hex
MAX_ITEM_CHARS = 400_000  # DynamoDB's item limit, so an item valid here is valid on AWS too
CHUNK = 32_000  # characters of (ASCII) JSON per string property: under its 64 KiB cap
MAX_ATTEMPTS = 20  # re-reads when a pinned write lost a race


class CrossPartitionTransaction(StorageError):
    """A transaction spans partitions: Azure Table transactions are single-partition."""

    code = "cross_partition_transaction"


def encode_key(key: str, what: str) -> str:
    raw = key.encode("utf-8")
    if len(raw) > MAX_KEY_BYTES:
        raise InvalidName(f"table {what} is longer than {MAX_KEY_BYTES} bytes: {key[:60]!r}...",
                          field=what)
    return raw.hex()


def prefix_range(prefix: str) -> tuple[str, str]:
    """The RowKey range of every key starting with `prefix` (hex digits sort below 'g')."""
    lo = encode_key(prefix, "sk")
    return lo, lo + "g"


class AzureTable:
    def __init__(self, name: str, service: Callable[[], Any]) -> None:
        self.name = name
        self._service = service

    @property
    def client(self) -> Any:
        return self._service().get_table_client(self.name)

    # -- encoding --------------------------------------------------------------------------
    def _entity(self, pk: str, sk: str, item: dict[str, Any] | None = None) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": encode_key(pk, "pk"),
                                  "RowKey": encode_key(sk, "sk")}
        if item is None:
            return entity
        data = json.dumps({k: v for k, v in item.items() if k not in ("pk", "sk")},
                          sort_keys=True, default=str)
        if len(data) > MAX_ITEM_CHARS:
            raise StorageError(f"item {pk}/{sk} is {len(data)} characters of JSON; the limit is "
                               f"{MAX_ITEM_CHARS}", field="item")
        entity.update(pk=pk, sk=sk)
        for i in range(0, max(len(data), 1), CHUNK):
            entity[f"d{i // CHUNK}"] = data[i:i + CHUNK]
        return entity

    @staticmethod
    def _decode(entity: Any) -> dict[str, Any]:
        parts, i = [], 0
        while (part := entity.get(f"d{i}")) is not None:
            parts.append(part)
            i += 1
        return {**json.loads("".join(parts) or "{}"), "pk": entity["pk"], "sk": entity["sk"]}

    def _read(self, pk: str, sk: str) -> tuple[dict[str, Any] | None, str | None]:
        """The item and its ETag (None, None when absent)."""
        key = self._entity(pk, sk)
        try:
            with mapped(f"get {pk}/{sk}"):
                entity = self.client.get_entity(key["PartitionKey"], key["RowKey"])
        except NotFound:
            return None, None
        return self._decode(entity), entity.metadata["etag"]

    # -- reads -----------------------------------------------------------------------------
    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self._read(pk, sk)[0]

    def query(self, pk: str, sk_prefix: str = "", *, reverse: bool = False,
              limit: int | None = None) -> list[dict[str, Any]]:
        flt, params = "PartitionKey eq @pk", {"pk": encode_key(pk, "pk")}
        if sk_prefix:
            flt += " and RowKey ge @lo and RowKey lt @hi"
            params["lo"], params["hi"] = prefix_range(sk_prefix)
        page = None if reverse or not limit else min(int(limit), 1000)
        out: list[dict[str, Any]] = []
        with mapped(f"query {pk}"):
            for entity in self.client.query_entities(flt, parameters=params, results_per_page=page):
                out.append(self._decode(entity))
                if limit and not reverse and len(out) >= limit:
                    break
        if reverse:
            out.reverse()
        return out[:limit] if limit else out

    # -- writes ----------------------------------------------------------------------------
    def put(self, pk: str, sk: str, item: dict[str, Any], condition: Condition = None) -> None:
        self.transact([Put(pk, sk, item, condition)])

    def delete(self, pk: str, sk: str, condition: Condition = None) -> None:
        self.transact([Delete(pk, sk, condition)])

    def _plan(self, op: Put | Delete) -> tuple | None:
        """One transaction operation, pinned to the item as read now (None: nothing to do)."""
        if isinstance(op, Put) and op.condition is None:
            return ("upsert", self._entity(op.pk, op.sk, op.item), {"mode": UpdateMode.REPLACE})
        current, etag = self._read(op.pk, op.sk)
        check(current, op.condition, op.pk, op.sk)
        pinned = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        if isinstance(op, Put):
            entity = self._entity(op.pk, op.sk, op.item)
            if current is None:
                return ("create", entity)  # refused if someone created it meanwhile
            return ("update", entity, {"mode": UpdateMode.REPLACE, **pinned})
        if current is None:
            return None  # deleting an absent item is a no-op, as on every backend
        return ("delete", self._entity(op.pk, op.sk), pinned)

    def transact(self, ops: Sequence[Put | Delete]) -> None:
        if not ops:
            return
        self._check_shape(ops)
        for _ in range(MAX_ATTEMPTS):
            planned = [p for p in (self._plan(op) for op in ops) if p is not None]
            if not planned:
                return
            try:
                with mapped(f"transaction on {ops[0].pk}"):
                    self.client.submit_transaction(planned)
                return
            except (ConditionFailed, NotFound):
                continue  # an item changed after we read it: read and decide again
        raise TransientError(f"transaction on {ops[0].pk}: too much contention, retry")

    @staticmethod
    def _check_shape(ops: Sequence[Put | Delete]) -> None:
        pks = sorted({op.pk for op in ops})
        if len(pks) > 1:
            raise CrossPartitionTransaction(
                f"a table transaction must stay in one partition (Azure Table transactions are "
                f"single-partition); this one spans {', '.join(map(repr, pks))}", field="pk")
        if len(ops) > MAX_TRANSACT:
            raise StorageError(f"a transaction holds at most {MAX_TRANSACT} operations")
        keys = [(op.pk, op.sk) for op in ops]
        if len(set(keys)) != len(keys):
            raise StorageError("a transaction may touch each item once")
