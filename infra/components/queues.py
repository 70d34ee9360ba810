"""Work queues: one SQS queue per topology queue, each with its dead-letter queue.

The visibility timeout comes from `Topology.visibility_timeout` (6x the consumer's timeout, so a
slow batch is not redelivered while it is still running); after `max_receive_count` receives a
message moves to the DLQ instead of being dropped. Both are encrypted with SQS-managed keys (SSE-
SQS), which S3 event notifications can write to without a key policy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.tags import component_tags
from mlops_kit.topology import Topology

RETENTION_S = 4 * 24 * 3600  # main queue: SQS default
DLQ_RETENTION_S = 14 * 24 * 3600  # DLQ: the maximum, time for an operator to look
LONG_POLL_S = 20
# A throttled Lambda poller returns the messages it received, and each return counts as a
# receive: on a new account (10 concurrent executions) a burst reaches the DLQ untried at 3.
# AWS: "set the maxReceiveCount on the source queue's redrive policy to at least 5"
# (docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html).
LAMBDA_MIN_RECEIVES = 5


def max_receive_count(max_receives: int) -> int:
    """The redrive's maxReceiveCount of a queue a Lambda function consumes: the topology's
    attempts, with room for throttled receives."""
    return max(max_receives, LAMBDA_MIN_RECEIVES)


@dataclass
class QueuesArgs:
    topology: Topology
    name_prefix: str


class Queues(pulumi.ComponentResource):
    def __init__(self, name: str, args: QueuesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlopskit:queues:Queues", name, None, opts)
        self.queues: dict[str, aws.sqs.Queue] = {}
        self.dlqs: dict[str, aws.sqs.Queue] = {}
        tags = component_tags("queues")
        for q in args.topology.queues:
            dlq = aws.sqs.Queue(
                f"{args.name_prefix}-{q.dlq}", sqs_managed_sse_enabled=True,
                message_retention_seconds=DLQ_RETENTION_S, tags=tags,
                opts=pulumi.ResourceOptions(parent=self))
            self.queues[q.name] = aws.sqs.Queue(
                f"{args.name_prefix}-{q.name}", sqs_managed_sse_enabled=True,
                visibility_timeout_seconds=args.topology.visibility_timeout(q.name),
                message_retention_seconds=RETENTION_S, receive_wait_time_seconds=LONG_POLL_S,
                tags=tags,
                redrive_policy=dlq.arn.apply(redrive_policy(max_receive_count(q.max_receives))),
                opts=pulumi.ResourceOptions(parent=self))
            self.dlqs[q.name] = dlq
        self.urls = {n: q.url for n, q in self.queues.items()}
        self.arns = {n: q.arn for n, q in self.queues.items()}
        self.register_outputs({"urls": self.urls,
                               "dlq_urls": {n: d.url for n, d in self.dlqs.items()}})


def redrive_policy(max_receives: int) -> Callable[[str], str]:
    """The queue's redrive policy, given its dead-letter queue's ARN."""
    return lambda dlq_arn: json.dumps({"deadLetterTargetArn": dlq_arn,
                                       "maxReceiveCount": max_receives})
