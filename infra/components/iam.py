"""Least-privilege policy documents, built from a topology Function and resolved ARNs.

Pure functions (no pulumi): a function may touch only the prefixes of its grants, the table
(read-only unless the topology says readwrite), the queue it consumes, the queues it sends to,
the alerts topic (and its key) and its own log group. No action contains a wildcard.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from mlops_kit.topology import Function

S3_READ = ("s3:GetObject", "s3:GetObjectVersion")
S3_WRITE = ("s3:PutObject", "s3:AbortMultipartUpload")
TABLE_READ = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query",
              "dynamodb:Scan", "dynamodb:DescribeTable", "dynamodb:ConditionCheckItem")
TABLE_WRITE = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
               "dynamodb:BatchWriteItem")
SQS_CONSUME = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
               "sqs:GetQueueAttributes")
SQS_SEND = ("sqs:SendMessage", "sqs:GetQueueAttributes")
LOGS = ("logs:CreateLogStream", "logs:PutLogEvents")
# X-Ray's write APIs have no resource-level permissions: their Resource must be "*".
XRAY = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
KMS_PUBLISH = ("kms:GenerateDataKey", "kms:Decrypt")  # SNS with a customer-managed key


@dataclass(frozen=True)
class Arns:
    """Everything a function's policy may name, resolved (plain strings)."""
    buckets: Mapping[str, str]  # store name -> bucket ARN
    table: str
    queues: Mapping[str, str]  # queue name -> ARN
    topic: str
    topic_key: str
    log_group: str


def assume_role_policy(service: str = "lambda.amazonaws.com") -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


def statements(fn: Function, arns: Arns, consumes: tuple[str, ...] = ()) -> list[dict]:
    out: list[dict] = [
        {"Sid": "OwnLogGroup", "Effect": "Allow", "Action": list(LOGS),
         "Resource": [f"{arns.log_group}:*"]},
        {"Sid": "Tracing", "Effect": "Allow", "Action": list(XRAY), "Resource": ["*"]},
    ]
    objects: dict[tuple[str, ...], list[str]] = defaultdict(list)
    listable: dict[str, list[str]] = defaultdict(list)
    for g in fn.stores:
        bucket = arns.buckets[g.store]
        actions = (S3_READ if g.access in ("read", "readwrite") else ()) + \
                  (S3_WRITE if g.access in ("write", "readwrite") else ())
        objects[actions].append(f"{bucket}/{g.prefix}*")
        if g.access in ("read", "readwrite"):
            listable[bucket].append(f"{g.prefix}*")
    for i, (actions, resources) in enumerate(sorted(objects.items())):
        out.append({"Sid": f"Objects{i}", "Effect": "Allow", "Action": list(actions),
                    "Resource": sorted(resources)})
    for i, (bucket, prefixes) in enumerate(sorted(listable.items())):
        out.append({"Sid": f"List{i}", "Effect": "Allow", "Action": ["s3:ListBucket"],
                    "Resource": [bucket],
                    "Condition": {"StringLike": {"s3:prefix": sorted(prefixes)}}})
    if fn.table:
        actions = TABLE_READ + (TABLE_WRITE if fn.table in ("write", "readwrite") else ())
        out.append({"Sid": "RegistryTable", "Effect": "Allow", "Action": list(actions),
                    "Resource": [arns.table]})
    if consumes:
        out.append({"Sid": "ConsumeQueue", "Effect": "Allow", "Action": list(SQS_CONSUME),
                    "Resource": sorted(arns.queues[q] for q in consumes)})
    if fn.sends_to:
        out.append({"Sid": "SendToQueues", "Effect": "Allow", "Action": list(SQS_SEND),
                    "Resource": sorted(arns.queues[q] for q in fn.sends_to)})
    if fn.publishes:
        out.append({"Sid": "PublishAlerts", "Effect": "Allow", "Action": ["sns:Publish"],
                    "Resource": [arns.topic]})
        out.append({"Sid": "AlertsKey", "Effect": "Allow", "Action": list(KMS_PUBLISH),
                    "Resource": [arns.topic_key]})
    return out


def policy_document(fn: Function, arns: Arns, consumes: tuple[str, ...] = ()) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements(fn, arns, consumes)})
