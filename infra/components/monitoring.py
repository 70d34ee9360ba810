"""Alerts and monitoring: the alerts topic (KMS), the topology's schedules and CloudWatch alarms.

`AlertsTopic` comes first (functions publish to it); `Monitoring` comes last (it watches the
functions, the DLQs and the API). Alarms fire on any message in a DLQ, any function error and on
serving latency (p99 of the serve function's duration and of the API).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from mlops_kit.topology import Topology

# The key policy lists its actions (no "kms:*"): the account may administer the key and use it
# through IAM policies; CloudWatch may use it to publish alarms to the encrypted topic.
KEY_ADMIN = (
    "kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:GetKeyRotationStatus",
    "kms:EnableKeyRotation", "kms:DisableKeyRotation", "kms:ListResourceTags",
    "kms:TagResource", "kms:UntagResource", "kms:EnableKey", "kms:DisableKey",
    "kms:UpdateKeyDescription", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
    "kms:ListGrants", "kms:CreateGrant", "kms:RevokeGrant", "kms:RetireGrant",
    "kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
)
KEY_USE = ("kms:GenerateDataKey", "kms:Decrypt")
PERIOD_S = 300


def alerts_key_policy(account_id: str, partition: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "AccountAdministersAndDelegatesToIam", "Effect": "Allow",
         "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
         "Action": list(KEY_ADMIN), "Resource": "*"},  # "*" in a key policy = this key
        {"Sid": "CloudWatchAlarmsPublish", "Effect": "Allow",
         "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": list(KEY_USE),
         # no condition keys: CloudWatch's calls do not carry them, and with one the alarm
         # fails to publish (only our topic uses this key, and only our account publishes)
         "Resource": "*"},
    ]})


@dataclass
class AlertsTopicArgs:
    topology: Topology
    name_prefix: str
    alarm_email: str | None = None


class AlertsTopic(pulumi.ComponentResource):
    def __init__(self, name: str, args: AlertsTopicArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlopskit:monitoring:AlertsTopic", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        identity = aws.get_caller_identity_output(opts=invoke)
        partition = aws.get_partition_output(opts=invoke)
        self.key = aws.kms.Key(
            f"{args.name_prefix}-{args.topology.topic}-key", enable_key_rotation=True,
            deletion_window_in_days=30, description="mlops-kit alerts topic",
            policy=pulumi.Output.all(identity.account_id, partition.partition).apply(
                lambda a: alerts_key_policy(a[0], a[1])),
            opts=child)
        self.topic = aws.sns.Topic(
            f"{args.name_prefix}-{args.topology.topic}", kms_master_key_id=self.key.arn,
            opts=child)
        if args.alarm_email:
            aws.sns.TopicSubscription(
                f"{args.name_prefix}-{args.topology.topic}-email", topic=self.topic.arn,
                protocol="email", endpoint=args.alarm_email, opts=child)
        self.arn = self.topic.arn
        self.key_arn = self.key.arn
        self.register_outputs({"topic_arn": self.topic.arn, "key_arn": self.key.arn})


@dataclass
class MonitoringArgs:
    topology: Topology
    name_prefix: str
    functions: Mapping[str, aws.lambda_.Function]
    dlq_names: Mapping[str, pulumi.Input[str]]  # topology queue -> its DLQ's name
    topic_arn: pulumi.Input[str]
    api_id: pulumi.Input[str] | None = None
    stage: str = "$default"
    latency_p99_ms: int = 1000


class Monitoring(pulumi.ComponentResource):
    def __init__(self, name: str, args: MonitoringArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlopskit:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        topo, prefix = args.topology, args.name_prefix
        self.rules: dict[str, aws.cloudwatch.EventRule] = {}
        for sched in topo.schedules:
            fn = args.functions[sched.function]
            rule = aws.cloudwatch.EventRule(
                f"{prefix}-{sched.function}-schedule", schedule_expression=sched.expression,
                description=f"mlops-kit: run {sched.function} on {sched.expression}", opts=child)
            aws.cloudwatch.EventTarget(f"{prefix}-{sched.function}-schedule-target",
                                       rule=rule.name, arn=fn.arn, opts=child)
            aws.lambda_.Permission(
                f"{prefix}-{sched.function}-schedule-invoke", action="lambda:InvokeFunction",
                function=fn.name, principal="events.amazonaws.com", source_arn=rule.arn,
                opts=child)
            self.rules[sched.function] = rule

        self.alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}

        def alarm(key: str, description: str, **kw) -> None:
            self.alarms[key] = aws.cloudwatch.MetricAlarm(
                f"{prefix}-{key}", alarm_description=description, period=PERIOD_S,
                evaluation_periods=1, comparison_operator="GreaterThanThreshold",
                treat_missing_data="notBreaching", alarm_actions=[args.topic_arn],
                ok_actions=[args.topic_arn], opts=child, **kw)

        for q in topo.queues:
            alarm(f"{q.dlq}-depth", f"messages in the {q.dlq} dead-letter queue: "
                  f"{q.consumer} failed {q.max_receives} times on them",
                  namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible",
                  dimensions={"QueueName": args.dlq_names[q.name]}, statistic="Maximum",
                  threshold=0)
        for f in topo.functions:
            alarm(f"{f.name}-errors", f"{f.name} function errors",
                  namespace="AWS/Lambda", metric_name="Errors",
                  dimensions={"FunctionName": args.functions[f.name].name}, statistic="Sum",
                  threshold=0)
        serve = topo.http.function
        alarm(f"{serve}-duration-p99", f"{serve} p99 duration above {args.latency_p99_ms} ms",
              namespace="AWS/Lambda", metric_name="Duration",
              dimensions={"FunctionName": args.functions[serve].name}, extended_statistic="p99",
              threshold=args.latency_p99_ms)
        if args.api_id is not None:
            alarm("api-latency-p99", f"inference API p99 latency above {args.latency_p99_ms} ms",
                  namespace="AWS/ApiGateway", metric_name="Latency",
                  dimensions={"ApiId": args.api_id, "Stage": args.stage},
                  extended_statistic="p99", threshold=args.latency_p99_ms)
        self.register_outputs({"alarms": sorted(self.alarms),
                               "schedules": {n: r.arn for n, r in self.rules.items()}})
