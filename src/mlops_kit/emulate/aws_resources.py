"""The topology rendered into moto through boto3: buckets with S3->SQS notifications, queues
with dead-letter queues and redrive, the table, the topic. Used by `emulate` and the tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from mlops_kit.iam import PolicyArns
from mlops_kit.topology import ENV_FOR, QUEUE_ENV, SCORE_JOB, Topology, default_topology

if TYPE_CHECKING:
    from mlops_kit.adapters.aws import Identity

ACCOUNT = "123456789012"


TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing"}


@dataclass
class Resources:
    region: str
    endpoint_url: str | None
    data_bucket: str
    artifact_bucket: str
    queue_urls: dict[str, str]  # topology queue name (and "<name>-dlq") -> url
    queue_arns: dict[str, str]
    table: str
    topic_arn: str
    inference_url: str | None = None
    buckets: dict[str, str] = field(default_factory=dict)  # topology store name -> bucket
    table_arn: str = ""
    stack: str = ""  # the name prefix (MLOPSKIT_STACK: the Stack dimension of the metrics)
    batch_job_queue: str | None = None  # training on the batch engine (emulate/batch.py)
    batch_job_definition: str | None = None
    batch_definitions: dict[str, str] = field(default_factory=dict)  # batch job -> definition
    # batch job -> (job queue ARN, job definition ARN without its revision): the submitter's
    # policy names them
    batch_arns: dict[str, tuple[str, str]] = field(default_factory=dict)
    # IAM enforced (emulate.iam): "admin" and one identity per function; empty otherwise
    identities: dict[str, Identity] = field(default_factory=dict, repr=False)

    def policy_arns(self) -> PolicyArns:
        """What the Pulumi program resolves before rendering a policy, for these resources
        (no KMS key on the topic, no log groups: see emulate.iam)."""
        return PolicyArns(buckets={s: f"arn:aws:s3:::{b}" for s, b in self.buckets.items()},
                          table=self.table_arn, queues=dict(self.queue_arns),
                          topic=self.topic_arn, batch_jobs=dict(self.batch_arns))

    def env(self) -> dict[str, str]:
        """The MLOPSKIT_* variables a deployed function gets (topology.ENV_FOR)."""
        out = {ENV_FOR["backend"]: "aws", "MLOPSKIT_REGION": self.region,
               ENV_FOR["data_store"]: self.data_bucket,
               ENV_FOR["artifact_store"]: self.artifact_bucket, ENV_FOR["table"]: self.table,
               ENV_FOR["train_queue"]: self.queue_urls["train"],
               ENV_FOR["validate_queue"]: self.queue_urls["validate"],
               ENV_FOR["topic"]: self.topic_arn}
        if self.endpoint_url:
            out["MLOPSKIT_ENDPOINT_URL"] = self.endpoint_url
        if self.stack:
            out[ENV_FOR["stack"]] = self.stack
        for queue, env in QUEUE_ENV.items():
            if queue in self.queue_urls and env not in out:
                out[env] = self.queue_urls[queue]
        if self.batch_job_queue:
            out[ENV_FOR["batch_job_queue"]] = self.batch_job_queue
            out[ENV_FOR["batch_job_definition"]] = self.batch_job_definition or ""
            if SCORE_JOB in self.batch_definitions:
                out[ENV_FOR["score_job_definition"]] = self.batch_definitions[SCORE_JOB]
        return out

    def summary(self) -> dict[str, Any]:
        skip = {"queue_arns", "buckets", "table_arn", "identities"}
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        d["queue_urls"] = dict(self.queue_urls)
        if self.identities:  # IAM enforced: the operator's keys (the only ones clients get)
            admin = self.identities["admin"]
            d["enforce_iam"] = True
            d["credentials"] = {"aws_access_key_id": admin.access_key_id,
                                "aws_secret_access_key": admin.secret_access_key}
        for name, url in self.queue_urls.items():
            d[f"{name.replace('-', '_')}_url" if name.endswith("-dlq") else f"{name}_queue_url"] = url
        return d


def provision(client: Callable[[str], Any], topology: Topology | None = None, *,
              prefix: str = "mlops-kit", region: str = "us-east-1",
              endpoint_url: str | None = None) -> Resources:
    """Render the topology with boto3: what infra/ does with Pulumi, for moto."""
    topology = topology or default_topology()
    s3, sqs, ddb, sns = (client(s) for s in ("s3", "sqs", "dynamodb", "sns"))
    buckets = {st.name: f"{prefix}-{st.name}" for st in topology.stores}
    for st in topology.stores:
        kwargs = {} if region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=buckets[st.name], **kwargs)
        if st.expire_days:
            s3.put_bucket_lifecycle_configuration(Bucket=buckets[st.name], LifecycleConfiguration={
                "Rules": [{"ID": f"expire-{p.strip('/')}", "Status": "Enabled",
                           "Filter": {"Prefix": p}, "Expiration": {"Days": d}}
                          for p, d in st.expire_days.items()]})
    urls: dict[str, str] = {}
    arns: dict[str, str] = {}
    for q in topology.queues:
        for name, attrs in ((q.dlq, {"MessageRetentionPeriod": str(14 * 86400)}), (q.name, None)):
            if attrs is None:
                attrs = {"VisibilityTimeout": str(topology.visibility_timeout(q.name)),
                         "RedrivePolicy": json.dumps({"deadLetterTargetArn": arns[q.dlq],
                                                      "maxReceiveCount": str(q.max_receives)})}
            urls[name] = sqs.create_queue(QueueName=f"{prefix}-{name}", Attributes=attrs)["QueueUrl"]
            arns[name] = sqs.get_queue_attributes(QueueUrl=urls[name], AttributeNames=[
                "QueueArn"])["Attributes"]["QueueArn"]
    for store in {t.store for t in topology.object_triggers}:
        triggers = [t for t in topology.object_triggers if t.store == store]
        for queue in {t.queue for t in triggers}:  # S3 may send to this queue, nobody else
            sqs.set_queue_attributes(QueueUrl=urls[queue], Attributes={"Policy": json.dumps({
                "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
                    "Action": "sqs:SendMessage", "Resource": arns[queue],
                    "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{buckets[store]}"}},
                }]})})
        s3.put_bucket_notification_configuration(
            Bucket=buckets[store], NotificationConfiguration={"QueueConfigurations": [
                {"Id": f"{t.prefix.strip('/')}-to-{t.queue}", "QueueArn": arns[t.queue],
                 "Events": ["s3:ObjectCreated:*"],
                 "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": t.prefix}]}}}
                for t in triggers]})
    t = topology.table
    table = f"{prefix}-{t.name}"
    table_arn = ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": t.partition_key, "KeyType": "HASH"},
                                {"AttributeName": t.sort_key, "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": t.partition_key, "AttributeType": "S"},
                                           {"AttributeName": t.sort_key, "AttributeType": "S"}]
                                 )["TableDescription"]["TableArn"]
    topic_arn = sns.create_topic(Name=f"{prefix}-{topology.topic}")["TopicArn"]
    from mlops_kit.topology import ARTIFACTS, DATA

    # (a topology's batch jobs: emulate.batch.provision_batch, after this)
    return Resources(region, endpoint_url, buckets[DATA], buckets[ARTIFACTS], urls, arns, table,
                     topic_arn, buckets=buckets, table_arn=table_arn, stack=prefix)
