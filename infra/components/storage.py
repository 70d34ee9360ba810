"""Object storage: one bucket per topology store, secure by default, plus S3 -> SQS triggers.

Every bucket (the topology's stores and the deployment's code bucket) goes through
`SecureBucket`: versioning, default encryption, all four public-access blocks, bucket-owner
ownership (ACLs off) and a policy denying any request not made over TLS. Lifecycle rules abort
stale multipart uploads, expire the topology's prefixes and, where the store says so, expire
noncurrent versions (overwritten or deleted objects) and the delete markers they leave.

S3 may send to a queue only for this account's bucket (aws:SourceAccount and aws:SourceArn),
and the bucket notification is put only after that queue policy exists: S3 checks that it may
send when the notification is put, and a race fails `pulumi up`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.tags import component_tags
from mlops_kit.topology import ObjectCreatedTrigger, Topology

ABORT_MULTIPART_DAYS = 7


@dataclass
class SecureBucketArgs:
    sse_algorithm: str = "aws:kms"  # aws:kms (AWS-managed key, bucket key on) or AES256
    expire_days: Mapping[str, int] = field(default_factory=dict)  # prefix -> days
    protect: bool = True  # refuse `pulumi destroy` while data is in it
    tags: Mapping[str, str] = field(default_factory=dict)
    noncurrent_days: int | None = None  # expire noncurrent versions (None: keep them)


class SecureBucket(pulumi.ComponentResource):
    def __init__(self, name: str, args: SecureBucketArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlopskit:storage:SecureBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = aws.s3.Bucket(
            name, force_destroy=not args.protect, tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        bucket_id = self.bucket.id
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=bucket_id,
            rule={"object_ownership": "BucketOwnerEnforced"}, opts=child)
        pab = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access", bucket=bucket_id, block_public_acls=True,
            block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
            opts=child)
        aws.s3.BucketVersioning(
            f"{name}-versioning", bucket=bucket_id,
            versioning_configuration={"status": "Enabled"}, opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sse", bucket=bucket_id,
            rules=[{
                "apply_server_side_encryption_by_default": {"sse_algorithm": args.sse_algorithm},
                "bucket_key_enabled": args.sse_algorithm == "aws:kms",
            }],
            opts=child)
        aws.s3.BucketPolicy(
            f"{name}-tls-only", bucket=bucket_id,
            policy=self.bucket.arn.apply(tls_only_policy),
            # a policy put before the public-access block can race it; order them
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pab]))
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle", bucket=bucket_id,
            rules=lifecycle_rules(args.expire_days, args.noncurrent_days), opts=child)
        self.register_outputs({"bucket": self.bucket.bucket, "arn": self.bucket.arn})


def tls_only_policy(bucket_arn: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
            "Action": "s3:*",  # a Deny of everything: not a grant (test_no_wildcard_iam_actions)
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    })


def lifecycle_rules(expire_days: Mapping[str, int], noncurrent_days: int | None = None
                    ) -> list[aws.s3.BucketLifecycleConfigurationRuleArgsDict]:
    rules: list[aws.s3.BucketLifecycleConfigurationRuleArgsDict] = [{
        "id": "abort-incomplete-multipart", "status": "Enabled", "filter": {"prefix": ""},
        "abort_incomplete_multipart_upload": {"days_after_initiation": ABORT_MULTIPART_DAYS},
    }]
    if noncurrent_days:
        rules.append({
            "id": "expire-noncurrent-versions", "status": "Enabled", "filter": {"prefix": ""},
            "noncurrent_version_expiration": {"noncurrent_days": noncurrent_days},
            # a delete marker with no versions left behind it is removed too
            "expiration": {"expired_object_delete_marker": True},
        })
    for prefix, days in sorted(expire_days.items()):
        rules.append({
            "id": f"expire-{prefix.strip('/')}", "status": "Enabled",
            "filter": {"prefix": prefix}, "expiration": {"days": days},
            # versioning keeps old copies: expire those too, or the rule frees nothing
            "noncurrent_version_expiration": {"noncurrent_days": days},
        })
    return rules


@dataclass
class StorageArgs:
    topology: Topology
    name_prefix: str
    queue_arns: Mapping[str, pulumi.Input[str]]  # topology queue name -> ARN
    queue_urls: Mapping[str, pulumi.Input[str]]
    sse_algorithm: str = "aws:kms"
    protect: bool = True


class Storage(pulumi.ComponentResource):
    """The topology's stores, and an object-created notification per topology trigger."""

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlopskit:storage:Storage", name, None, opts)
        topo = args.topology
        tags = component_tags("storage")
        self.buckets: dict[str, aws.s3.Bucket] = {}
        for store in topo.stores:
            sb = SecureBucket(
                f"{args.name_prefix}-{store.name}",
                SecureBucketArgs(args.sse_algorithm, store.expire_days, args.protect, tags,
                                 store.noncurrent_days),
                pulumi.ResourceOptions(parent=self))
            self.buckets[store.name] = sb.bucket

        # S3 allows one notification configuration per bucket, SQS one policy per queue:
        # group the topology's triggers both ways.
        by_store: defaultdict[str, list[ObjectCreatedTrigger]] = defaultdict(list)
        by_queue: defaultdict[str, set[str]] = defaultdict(set)
        for trig in topo.object_triggers:
            by_store[trig.store].append(trig)
            by_queue[trig.queue].add(trig.store)
        account = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        self.queue_policies: dict[str, aws.sqs.QueuePolicy] = {}
        for queue, stores in sorted(by_queue.items()):
            arns = [self.buckets[s].arn for s in sorted(stores)]
            self.queue_policies[queue] = aws.sqs.QueuePolicy(
                f"{args.name_prefix}-{queue}-from-s3", queue_url=args.queue_urls[queue],
                policy=pulumi.Output.all(args.queue_arns[queue], account, *arns).apply(
                    lambda a: s3_send_policy(a[0], a[2:], a[1])),
                opts=pulumi.ResourceOptions(parent=self))
        policies = list(self.queue_policies.values())
        for store_name, triggers in sorted(by_store.items()):
            aws.s3.BucketNotification(
                f"{args.name_prefix}-{store_name}-notifications",
                bucket=self.buckets[store_name].id,
                queues=[{"id": f"{t.prefix.strip('/')}-to-{t.queue}",
                         "queue_arn": args.queue_arns[t.queue],
                         "events": ["s3:ObjectCreated:*"], "filter_prefix": t.prefix}
                        for t in triggers],
                # S3 checks it may send when the notification is put: policy first
                opts=pulumi.ResourceOptions(parent=self, depends_on=policies))

        self.bucket_names = {n: b.bucket for n, b in self.buckets.items()}
        self.register_outputs({"buckets": self.bucket_names})


def s3_send_policy(queue_arn: str, bucket_arns: list[str], account_id: str) -> str:
    """S3 may send for these buckets only, and only as this account's buckets (bucket names
    are global: aws:SourceAccount stops a same-named bucket elsewhere, the confused deputy)."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AllowS3ObjectCreated", "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": sorted(bucket_arns)},
                          "StringEquals": {"aws:SourceAccount": account_id}},
        }],
    })
