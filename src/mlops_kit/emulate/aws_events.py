"""The events AWS delivers to the functions, built the way AWS builds them: SQS records, HTTP
API (payload 2.0) requests, EventBridge schedules."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from mlops_kit.emulate.aws_resources import ACCOUNT


def sqs_record(m: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A received message as the Lambda SQS event source hands it over."""
    attrs = m.get("Attributes", {})
    return {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": {k: attrs[k] for k in ("ApproximateReceiveCount", "SentTimestamp",
                                                 "SenderId", "ApproximateFirstReceiveTimestamp")
                           if k in attrs},
            "messageAttributes": m.get("MessageAttributes", {}), "md5OfBody": m.get("MD5OfBody"),
            "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region}


def http_api_event(method: str, raw_path: str, headers: dict[str, str], body: bytes,
                   *, source_ip: str = "127.0.0.1", host: str = "localhost") -> dict[str, Any]:
    """An API Gateway HTTP API payload 2.0 event ($default route and stage)."""
    path, _, query = raw_path.partition("?")
    now = datetime.now(UTC)
    text = None
    if body:
        try:
            text, b64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, b64 = base64.b64encode(body).decode(), True
    lower = {k.lower(): v for k, v in headers.items()}
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": lower,
        "requestContext": {
            "accountId": ACCOUNT, "apiId": "emulated", "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": lower.get("user-agent", "")},
            "requestId": uuid.uuid4().hex, "routeKey": "$default", "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        **({"body": text, "isBase64Encoded": b64} if text is not None
           else {"isBase64Encoded": False}),
    }


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")


def rate_seconds(expression: str) -> float:
    m = _RATE.fullmatch(expression.strip())
    if not m:
        raise ValueError(f"schedule {expression!r}: only rate(N minutes|hours|days) is emulated")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[m.group(2).rstrip("s")]
    return int(m.group(1)) * unit


def schedule_event(rule_arn: str, region: str | None = None) -> dict[str, Any]:
    """An EventBridge scheduled event; the region is the rule's (from its ARN) unless given."""
    if region is None:
        parts = rule_arn.split(":")
        region = parts[3] if len(parts) > 3 and parts[3] else "us-east-1"
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": ACCOUNT,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
            "resources": [rule_arn], "detail": {}}
