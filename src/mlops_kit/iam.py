"""The IAM policy of a function (AWS), rendered from the topology for Pulumi and for the
IAM-enforced moto emulation alike: exactly what its code calls, nothing more."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlops_kit.topology import Topology

S3_READ, S3_WRITE, S3_ABORT, S3_LIST = (
    "s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListBucket")
TABLE_ACTIONS: dict[str, str] = {"get": "dynamodb:GetItem", "query": "dynamodb:Query",
                                 "put": "dynamodb:PutItem", "delete": "dynamodb:DeleteItem"}
# What the Lambda event source mapping calls with the consumer's role.
SQS_CONSUME = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
SQS_SEND = ("sqs:SendMessage",)
LOGS = ("logs:CreateLogStream", "logs:PutLogEvents")
# X-Ray's write APIs have no resource-level permissions: their Resource must be "*".
XRAY = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
KMS_PUBLISH = ("kms:GenerateDataKey", "kms:Decrypt")  # SNS topic with a customer-managed key
BATCH_SUBMIT, BATCH_FIND = ("batch:SubmitJob",), ("batch:ListJobs",)


@dataclass(frozen=True)
class PolicyArns:
    """The resolved ARNs a policy may name (plain strings: Pulumi resolves its outputs first)."""

    buckets: Mapping[str, str]  # store name -> bucket ARN
    table: str
    queues: Mapping[str, str]  # queue name -> ARN
    topic: str
    topic_key: str | None = None  # the topic's KMS key, when it has one
    log_group: str | None = None  # the function's own log group
    # batch job name -> (job queue ARN, job definition ARN without its :revision)
    batch_jobs: Mapping[str, tuple[str, str]] = field(default_factory=dict)


def iam_policy(topology: Topology, function: str, arns: PolicyArns, *,
               tracing: bool = False) -> dict[str, Any]:
    """The IAM policy document (JSON-ready) of one function, or of a batch job's role:
    exactly what its code calls."""
    fn = topology.principal(function)
    out: list[dict[str, Any]] = []

    def allow(sid: str, actions, resources, condition: dict | None = None) -> None:
        stmt: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": list(actions),
                                "Resource": sorted(resources)}
        if condition:
            stmt["Condition"] = condition
        out.append(stmt)

    if arns.log_group:
        allow("OwnLogGroup", LOGS, [f"{arns.log_group}:*"])
    if tracing:
        allow("Tracing", XRAY, ["*"])
    objects: dict[tuple[str, ...], set[str]] = {}
    listed: dict[str, set[str]] = {}
    for g in fn.stores:
        bucket = arns.buckets[g.store]
        actions = tuple(a for a, on in ((S3_READ, g.access != "write"),
                                        (S3_WRITE, g.access != "read"),
                                        (S3_ABORT, g.multipart)) if on)
        objects.setdefault(actions, set()).add(f"{bucket}/{g.prefix}{g.match}")
        if g.lists or g.probes:  # exists() lists with the key as prefix (S3ObjectStore)
            listed.setdefault(bucket, set()).add(f"{g.prefix}*")
    for i, (actions, resources) in enumerate(sorted(objects.items())):
        allow(f"Objects{i}", actions, resources)
    # Listing is granted per prefix only: no function may list a whole bucket, so a GET or
    # HEAD of a missing key answers 403 (never relied on: exists() lists, see above).
    for i, (bucket, prefixes) in enumerate(sorted(listed.items())):
        allow(f"ListPrefixes{i}", (S3_LIST,), [bucket],
              {"StringLike": {"s3:prefix": sorted(prefixes)}})
    if fn.table:
        allow("RegistryTable", [TABLE_ACTIONS[op] for op in TABLE_ACTIONS if op in fn.table],
              [arns.table])
    consumed = topology.consumes(fn.name)
    if consumed:
        allow("ConsumeQueue", SQS_CONSUME, [arns.queues[q] for q in consumed])
    if fn.sends_to:
        allow("SendToQueues", SQS_SEND, [arns.queues[q] for q in fn.sends_to])
    if fn.publishes:
        allow("PublishAlerts", ("sns:Publish",), [arns.topic])
        if arns.topic_key:
            allow("AlertsKey", KMS_PUBLISH, [arns.topic_key])
    submits = [j.name for j in topology.batch_jobs if j.submitted_by == fn.name]
    if submits:  # route_training: BatchRunner.submit (every revision of the definition)
        allow("SubmitBatchJob", BATCH_SUBMIT,
              [r for j in submits for r in (arns.batch_jobs[j][0], f"{arns.batch_jobs[j][1]}:*")])
        # ListJobs has no resource-level permissions: finding a job by name needs "*"
        allow("FindBatchJob", BATCH_FIND, ["*"])
    return {"Version": "2012-10-17", "Statement": out}
