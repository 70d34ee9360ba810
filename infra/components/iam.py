"""IAM glue for Pulumi: the trust policy, and each function's policy document rendered by
`mlops_kit.iam.iam_policy` (the one renderer, shared with the IAM-enforced emulation)
once Pulumi has resolved the ARNs it names."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pulumi

from mlops_kit.iam import PolicyArns, iam_policy
from mlops_kit.topology import Topology


def assume_role_policy(service: str = "lambda.amazonaws.com") -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


def function_policy(topology: Topology, function: str, *,
                    bucket_arns: Mapping[str, pulumi.Input[str]], table_arn: pulumi.Input[str],
                    queue_arns: Mapping[str, pulumi.Input[str]], topic_arn: pulumi.Input[str],
                    topic_key_arn: pulumi.Input[str] | None, log_group_arn: pulumi.Input[str],
                    tracing: bool,
                    batch_arns: Mapping[str, tuple[pulumi.Input[str], pulumi.Input[str]]]
                    | None = None) -> pulumi.Output[str]:
    stores = [s.name for s in topology.stores]
    queues = [q.name for q in topology.queues]
    batch = batch_arns or {}  # batch job -> (job queue ARN, job definition ARN prefix)
    jobs = sorted(batch)
    resolved = pulumi.Output.all(
        [bucket_arns[s] for s in stores], table_arn, [queue_arns[q] for q in queues],
        topic_arn, topic_key_arn, log_group_arn, [list(batch[j]) for j in jobs])
    return resolved.apply(lambda r: json.dumps(iam_policy(topology, function, PolicyArns(
        buckets=dict(zip(stores, r[0], strict=True)), table=r[1],
        queues=dict(zip(queues, r[2], strict=True)), topic=r[3], topic_key=r[4],
        log_group=r[5], batch_jobs={j: tuple(a) for j, a in zip(jobs, r[6], strict=True)}),
        tracing=tracing)))
