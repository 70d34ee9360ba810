"""Alerts and monitoring: the alerts topic (KMS), the topology's schedules, CloudWatch alarms
and the stack's dashboard.

`AlertsTopic` comes first (functions publish to it); `Monitoring` comes last (it watches the
functions, the queues and the API). Alarms fire on any function error or throttle, any message
in a DLQ, a queue message older than one visibility timeout (its consumer is stuck or
starved), any API 5xx, serving latency (p99 of the serve function's duration and of the API),
and on a schedule that fired but could not invoke its function (the rule's FailedInvocations).

No alarm breaches on missing data: a fresh stack has none, and an alarm that fires right after
`pulumi up` trains people to ignore it. (The old heartbeat, "no invocation in two intervals" with
missing data breaching, was in ALARM from deploy until the first run.) A run that fails is an
Errors alarm; a run EventBridge could not start (permission, throttling past its retries, the
function gone) is FailedInvocations.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.dashboard import dashboard_body
from infra.components.queues import max_receive_count
from infra.components.tags import component_tags
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
DAY_S = 86400
# CloudWatch: period x evaluation periods <= 7 days, and <= 1 day when the period is < 1 hour
MAX_ALARM_WINDOW_S, MAX_SHORT_WINDOW_S = 7 * DAY_S, DAY_S
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
        tags = component_tags("alerts")
        self.key = aws.kms.Key(
            f"{args.name_prefix}-{args.topology.topic}-key", enable_key_rotation=True, tags=tags,
            deletion_window_in_days=30, description="mlops-kit alerts topic",
            policy=pulumi.Output.all(identity.account_id, partition.partition).apply(
                lambda a: alerts_key_policy(a[0], a[1])),
            opts=child)
        self.topic = aws.sns.Topic(
            f"{args.name_prefix}-{args.topology.topic}", kms_master_key_id=self.key.arn,
            tags=tags, opts=child)
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
    region: str
    functions: Mapping[str, aws.lambda_.Function]
    queue_names: Mapping[str, pulumi.Input[str]]  # topology queue -> its name
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
        tags = component_tags("monitoring")
        self.rules: dict[str, aws.cloudwatch.EventRule] = {}
        for sched in topo.schedules:
            fn = args.functions[sched.function]
            rule = aws.cloudwatch.EventRule(
                f"{prefix}-{sched.function}-schedule", schedule_expression=sched.expression,
                description=f"mlops-kit: run {sched.function} on {sched.expression}", tags=tags,
                opts=child)
            aws.cloudwatch.EventTarget(f"{prefix}-{sched.function}-schedule-target",
                                       rule=rule.name, arn=fn.arn, opts=child)
            aws.lambda_.Permission(
                f"{prefix}-{sched.function}-schedule-invoke", action="lambda:InvokeFunction",
                function=fn.name, principal="events.amazonaws.com", source_arn=rule.arn,
                opts=child)
            self.rules[sched.function] = rule

        self.alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}

        def alarm(key: str, description: str, *, period: int = PERIOD_S,
                  evaluation_periods: int = 1, comparison: str = "GreaterThanThreshold",
                  missing: str = "notBreaching", **kw) -> None:
            self.alarms[key] = aws.cloudwatch.MetricAlarm(
                f"{prefix}-{key}", alarm_description=description, period=period,
                evaluation_periods=evaluation_periods, comparison_operator=comparison,
                treat_missing_data=missing, alarm_actions=[args.topic_arn],
                ok_actions=[args.topic_arn], tags=tags, opts=child, **kw)

        for f in topo.functions:
            dims = {"FunctionName": args.functions[f.name].name}
            alarm(f"{f.name}-errors", f"{f.name} function errors", namespace="AWS/Lambda",
                  metric_name="Errors", dimensions=dims, statistic="Sum", threshold=0)
            alarm(f"{f.name}-throttles", f"{f.name} invocations throttled (concurrency)",
                  namespace="AWS/Lambda", metric_name="Throttles", dimensions=dims,
                  statistic="Sum", threshold=0)
        for q in topo.queues:
            alarm(f"{q.dlq}-depth", f"messages in the {q.dlq} dead-letter queue: "
                  f"{q.consumer} was handed them {max_receive_count(q.max_receives)} times",
                  namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible",
                  dimensions={"QueueName": args.dlq_names[q.name]}, statistic="Maximum",
                  threshold=0)
            age = topo.visibility_timeout(q.name)
            alarm(f"{q.name}-oldest-message-age",
                  f"a {q.name} message waited over {age} s (one visibility timeout): "
                  f"{q.consumer} is failing, throttled or capped", namespace="AWS/SQS",
                  metric_name="ApproximateAgeOfOldestMessage",
                  dimensions={"QueueName": args.queue_names[q.name]}, statistic="Maximum",
                  threshold=age)
        for sched in topo.schedules:
            alarm(f"{sched.function}-did-not-run",
                  f"the {sched.expression} schedule fired but could not invoke "
                  f"{sched.function} (permission, throttling past retries, function gone)",
                  namespace="AWS/Events", metric_name="FailedInvocations",
                  dimensions={"RuleName": self.rules[sched.function].name}, statistic="Sum",
                  threshold=0)
        serve = topo.http.function
        alarm(f"{serve}-duration-p99", f"{serve} p99 duration above {args.latency_p99_ms} ms",
              namespace="AWS/Lambda", metric_name="Duration",
              dimensions={"FunctionName": args.functions[serve].name}, extended_statistic="p99",
              threshold=args.latency_p99_ms)
        if args.api_id is not None:
            api_dims = {"ApiId": args.api_id, "Stage": args.stage}
            alarm("api-latency-p99", f"inference API p99 latency above {args.latency_p99_ms} ms",
                  namespace="AWS/ApiGateway", metric_name="Latency", dimensions=api_dims,
                  extended_statistic="p99", threshold=args.latency_p99_ms)
            alarm("api-5xx", "inference API answered 5xx (the serve function failed)",
                  namespace="AWS/ApiGateway", metric_name="5xx", dimensions=api_dims,
                  statistic="Sum", threshold=0)

        names = pulumi.Output.all(
            functions={n: f.name for n, f in args.functions.items()},
            queues=dict(args.queue_names), dlqs=dict(args.dlq_names),
            api_id=args.api_id if args.api_id is not None else "")
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{prefix}-dashboard", dashboard_name=f"{prefix}-mlops-kit",
            dashboard_body=names.apply(lambda n: json.dumps(dashboard_body(
                topo, args.region, n["functions"], n["queues"], n["dlqs"],
                n["api_id"] or None, args.stage, stack=prefix))),
            opts=child)
        self.register_outputs({"alarms": sorted(self.alarms), "dashboard": self.dashboard.id,
                               "schedules": {n: r.arn for n, r in self.rules.items()}})
