"""DynamoDB key-value table: (pk, sk) items, conditional writes, TransactWriteItems.

DynamoDB rejects Python floats, so numbers go in as Decimal and come back as int or float.
Non-finite floats (NaN, inf) cannot be stored at all; they are stored as null."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from decimal import Context, Decimal
from typing import Any

from mlops_kit.adapters.aws._errors import mapped
from mlops_kit.ports import Absent, AbsentOrEquals, Condition, Delete, Equals, Put

_DEC = Context(prec=38)  # DynamoDB's number precision
MAX_TRANSACT = 100


def to_dynamo(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (str, int, Decimal)):
        return value
    if isinstance(value, float):
        return _DEC.create_decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dynamo(v) for v in value]
    return str(value)  # datetimes, paths, enums: the local table's json default=str does this too


def from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) \
            and "E" not in str(value).upper() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, set)):
        return [from_dynamo(v) for v in value]
    return value


class _Expr:
    """Builds a ConditionExpression with placeholder names and values."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def name(self, attr: str) -> str:
        for k, v in self.names.items():
            if v == attr:
                return k
        k = f"#n{len(self.names)}"
        self.names[k] = attr
        return k

    def value(self, val: Any) -> str:
        k = f":v{len(self.values)}"
        self.values[k] = val
        return k

    def equals(self, attr: str, value: Any) -> str:
        n = self.name(attr)
        if value is None:  # None means "attribute missing" (or explicitly null)
            return f"(attribute_not_exists({n}) OR attribute_type({n}, {self.value('NULL')}))"
        return f"{n} = {self.value(value)}"

    def condition(self, cond: Condition) -> str | None:
        if cond is None:
            return None
        pk = self.name("pk")
        if isinstance(cond, Absent):
            return f"attribute_not_exists({pk})"
        if isinstance(cond, Equals):
            return f"(attribute_exists({pk}) AND {self.equals(cond.attr, cond.value)})"
        if isinstance(cond, AbsentOrEquals):
            return f"(attribute_not_exists({pk}) OR {self.equals(cond.attr, cond.value)})"
        raise TypeError(f"unknown condition {cond!r}")


class DynamoTable:
    def __init__(self, name: str, client: Callable[[], Any]) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self.name = name
        self._client = client
        self._ser = TypeSerializer()
        self._de = TypeDeserializer()

    @property
    def ddb(self) -> Any:
        return self._client()

    def _key(self, pk: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    def _encode(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(v) for k, v in to_dynamo(item).items()}

    def _decode(self, item: dict[str, Any]) -> dict[str, Any]:
        return from_dynamo({k: self._de.deserialize(v) for k, v in item.items()})

    def _cond(self, cond: Condition) -> dict[str, Any]:
        expr = _Expr()
        text = expr.condition(cond)
        if text is None:
            return {}
        out: dict[str, Any] = {"ConditionExpression": text, "ExpressionAttributeNames": expr.names}
        if expr.values:
            out["ExpressionAttributeValues"] = {k: self._ser.serialize(to_dynamo(v))
                                                for k, v in expr.values.items()}
        return out

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        with mapped(f"get {pk}/{sk}"):
            resp = self.ddb.get_item(TableName=self.name, Key=self._key(pk, sk),
                                     ConsistentRead=True)
        return self._decode(resp["Item"]) if "Item" in resp else None

    def _put_item(self, pk: str, sk: str, item: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in item.items() if k not in ("pk", "sk")}
        return {**self._encode(body), **self._key(pk, sk)}

    def put(self, pk: str, sk: str, item: dict[str, Any], condition: Condition = None) -> None:
        with mapped(f"put {pk}/{sk}"):
            self.ddb.put_item(TableName=self.name, Item=self._put_item(pk, sk, item),
                              **self._cond(condition))

    def delete(self, pk: str, sk: str, condition: Condition = None) -> None:
        with mapped(f"delete {pk}/{sk}"):
            self.ddb.delete_item(TableName=self.name, Key=self._key(pk, sk),
                                 **self._cond(condition))

    def query(self, pk: str, sk_prefix: str = "", *, reverse: bool = False,
              limit: int | None = None) -> list[dict[str, Any]]:
        expr = "pk = :pk" + (" AND begins_with(sk, :pre)" if sk_prefix else "")
        values = {":pk": {"S": pk}, **({":pre": {"S": sk_prefix}} if sk_prefix else {})}
        kwargs: dict[str, Any] = {"TableName": self.name, "KeyConditionExpression": expr,
                                  "ExpressionAttributeValues": values, "ConsistentRead": True,
                                  "ScanIndexForward": not reverse}
        out: list[dict[str, Any]] = []
        with mapped(f"query {pk}"):
            while True:
                if limit:
                    kwargs["Limit"] = limit - len(out)
                resp = self.ddb.query(**kwargs)
                out.extend(self._decode(i) for i in resp.get("Items", []))
                if "LastEvaluatedKey" not in resp or (limit and len(out) >= limit):
                    break
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return out

    def transact(self, ops: Sequence[Put | Delete]) -> None:
        if not ops:
            return
        if len(ops) > MAX_TRANSACT:
            raise ValueError(f"a transaction holds at most {MAX_TRANSACT} operations")
        items = []
        for op in ops:
            if isinstance(op, Put):
                items.append({"Put": {"TableName": self.name,
                                      "Item": self._put_item(op.pk, op.sk, op.item),
                                      **self._cond(op.condition)}})
            else:
                items.append({"Delete": {"TableName": self.name, "Key": self._key(op.pk, op.sk),
                                         **self._cond(op.condition)}})
        with mapped(f"transaction on {ops[0].pk}"):
            self.ddb.transact_write_items(TransactItems=items)
