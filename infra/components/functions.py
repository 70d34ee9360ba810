"""Functions: one Lambda per topology function, each with its own role, policy and log group.

Light functions ship as the reproducible zips from infra/lambda_zips.py, uploaded to a private code
bucket under a content-addressed key (zips over 50 MB cannot be sent inline, and an unchanged
zip is not re-uploaded); training ships as a container image. Queue consumers get an event source
mapping reporting partial batch failures, so one bad message does not redeliver the batch.

No reserved concurrency unless the stack opts in (reservedConcurrency): new accounts have a
concurrency quota of 10 or 50 and refuse any reservation that leaves fewer than 10 unreserved,
so a default reservation fails `pulumi up`. A queue's `max_concurrency` caps its consumer on
the event source mapping instead (train: 2). X-Ray tracing is opt-in (tracing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.iam import assume_role_policy, function_policy
from infra.components.storage import SecureBucket, SecureBucketArgs
from infra.components.tags import component_tags
from infra.lambda_zips import Artifact
from mlops_kit.topology import ENV_FOR, QUEUE_ENV, STORE_ENV, Function, Topology

RUNTIME = "python3.12"
REGION_ENV = "MLOPSKIT_REGION"  # settings.Settings.region (ENV_FOR has no entry for it)
MAX_BATCHING_WINDOW_S = 5


@dataclass
class FunctionsArgs:
    topology: Topology
    name_prefix: str
    bucket_arns: Mapping[str, pulumi.Input[str]]
    bucket_names: Mapping[str, pulumi.Input[str]]
    table_arn: pulumi.Input[str]
    table_name: pulumi.Input[str]
    queue_arns: Mapping[str, pulumi.Input[str]]
    queue_urls: Mapping[str, pulumi.Input[str]]
    topic_arn: pulumi.Input[str]
    topic_key_arn: pulumi.Input[str]
    zips: Mapping[str, Artifact]  # zip function -> built artifact
    image_uri: pulumi.Input[str] | None  # for image functions: repo@sha256:<digest> only
    region: str
    log_retention_days: int = 30
    memory: Mapping[str, int] = field(default_factory=dict)  # overrides, MB
    reserved_concurrency: Mapping[str, int] = field(default_factory=dict)  # opt-in only
    tracing: bool = False
    sse_algorithm: str = "aws:kms"
    protect: bool = True
    code_noncurrent_days: int = 7  # replaced code zips (noncurrent versions) expire
    # training on AWS Batch (infra/components/batch.py): the submitter's names and ARNs
    extra_env: Mapping[str, Mapping[str, pulumi.Input[str]]] = field(default_factory=dict)
    batch_arns: Mapping[str, tuple[pulumi.Input[str], pulumi.Input[str]]] = field(
        default_factory=dict)


def environment(fn: Function, args: FunctionsArgs) -> dict[str, pulumi.Input[str]]:
    """Names (never secrets) the function's adapters need; permissions are the policy's job.

    The AWS backend factory builds every adapter at cold start (both stores, the table, both
    queues), so every function gets every name; what it may *do* with them is its policy.
    The topic only goes to publishers: with it set, the notifier publishes.
    """
    env: dict[str, pulumi.Input[str]] = {ENV_FOR["backend"]: "aws", REGION_ENV: args.region,
                                         ENV_FOR["stack"]: args.name_prefix}
    for store in args.topology.stores:
        env[STORE_ENV[store.name]] = args.bucket_names[store.name]
    env[ENV_FOR["table"]] = args.table_name
    for queue in args.topology.queues:
        env[QUEUE_ENV[queue.name]] = args.queue_urls[queue.name]
    if fn.publishes:
        env[ENV_FOR["topic"]] = args.topic_arn
    env.update(args.extra_env.get(fn.name, {}))
    return env


class Functions(pulumi.ComponentResource):
    def __init__(self, name: str, args: FunctionsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlopskit:functions:Functions", name, None, opts)
        topo, prefix = args.topology, args.name_prefix
        tags = component_tags("functions")
        self.functions: dict[str, aws.lambda_.Function] = {}
        self.roles: dict[str, aws.iam.Role] = {}
        self.log_groups: dict[str, aws.cloudwatch.LogGroup] = {}
        self.mappings: dict[str, aws.lambda_.EventSourceMapping] = {}
        # zip function -> (bucket, key, base64 sha256): the console sign-in runs serve's zip
        self.code: dict[str, tuple[pulumi.Output[str], pulumi.Output[str], str]] = {}
        code_bucket: aws.s3.Bucket | None = None
        if any(f.package == "zip" for f in topo.functions):
            # content-addressed keys: a new zip is a new key and Pulumi deletes the old object,
            # which versioning keeps as a noncurrent version until the lifecycle expires it
            code_bucket = SecureBucket(
                f"{prefix}-code", SecureBucketArgs(
                    args.sse_algorithm, protect=False, tags=tags,
                    noncurrent_days=args.code_noncurrent_days),
                pulumi.ResourceOptions(parent=self)).bucket

        for fn in topo.functions:
            child = pulumi.ResourceOptions(parent=self)
            fn_name = f"{prefix}-{fn.name}"
            log_group = aws.cloudwatch.LogGroup(
                f"{fn_name}-logs", name=f"/aws/lambda/{fn_name}",
                retention_in_days=args.log_retention_days, tags=tags, opts=child)
            role = aws.iam.Role(f"{fn_name}-role", assume_role_policy=assume_role_policy(),
                                description=f"mlops-kit {fn.name}: least privilege", tags=tags,
                                opts=child)
            consumes = topo.consumes(fn.name)
            policy = aws.iam.RolePolicy(
                f"{fn_name}-policy", role=role.id, policy=function_policy(
                    topo, fn.name, bucket_arns=args.bucket_arns, table_arn=args.table_arn,
                    queue_arns=args.queue_arns, topic_arn=args.topic_arn,
                    topic_key_arn=args.topic_key_arn, log_group_arn=log_group.arn,
                    tracing=args.tracing, batch_arns=args.batch_arns),
                opts=child)

            common: dict[str, Any] = dict(  # aws.lambda_.Function's arguments, both packages
                name=fn_name, role=role.arn, memory_size=args.memory.get(fn.name, fn.memory_mb),
                timeout=fn.timeout_s,
                reserved_concurrent_executions=args.reserved_concurrency.get(fn.name),
                architectures=["x86_64"],
                tracing_config={"mode": "Active" if args.tracing else "PassThrough"},
                environment={"variables": environment(fn, args)},
                logging_config={"log_format": "JSON", "log_group": log_group.name}, tags=tags,
                # the role must hold its permissions before the function (and its mappings) use it
                opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, log_group]))
            if fn.package == "zip":
                assert code_bucket is not None  # created above when any function is a zip
                art = args.zips[fn.name]
                obj = aws.s3.BucketObjectv2(
                    f"{fn_name}-code", bucket=code_bucket.id, key=f"{fn.name}/{art.sha256}.zip",
                    source=pulumi.FileAsset(art.path), tags=tags, opts=child)
                function = aws.lambda_.Function(
                    fn_name, package_type="Zip", runtime=RUNTIME, handler=fn.handler,
                    s3_bucket=code_bucket.id, s3_key=obj.key,
                    source_code_hash=art.base64_sha256, **common)
                self.code[fn.name] = (code_bucket.id, obj.key, art.base64_sha256)
            else:
                if args.image_uri is None:
                    raise ValueError(f"function {fn.name} is an image function: image_uri needed")
                function = aws.lambda_.Function(
                    fn_name, package_type="Image", image_uri=args.image_uri, **common)

            for q in (topo.queue(n) for n in consumes):
                self.mappings[q.name] = aws.lambda_.EventSourceMapping(
                    f"{prefix}-{q.name}-to-{fn.name}", event_source_arn=args.queue_arns[q.name],
                    function_name=function.arn, batch_size=q.batch_size,
                    maximum_batching_window_in_seconds=MAX_BATCHING_WINDOW_S
                    if q.batch_size > 1 else None,
                    function_response_types=["ReportBatchItemFailures"],
                    # the cap on concurrent consumers (no reserved concurrency needed); with a
                    # reservation too, poll no faster than the function may run, or throttled
                    # messages burn receives and land in the DLQ unprocessed
                    scaling_config=scaling(q.max_concurrency,
                                           args.reserved_concurrency.get(fn.name)),
                    tags=tags, opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]))
            self.functions[fn.name] = function
            self.roles[fn.name] = role
            self.log_groups[fn.name] = log_group

        self.names = {n: f.name for n, f in self.functions.items()}
        self.register_outputs({"names": self.names,
                               "arns": {n: f.arn for n, f in self.functions.items()}})


def scaling(max_concurrency: int | None, reserved: int | None
            ) -> aws.lambda_.EventSourceMappingScalingConfigArgsDict | None:
    """An event source mapping's scaling config: SQS allows 2-1000 concurrent consumers."""
    caps = [c for c in (max_concurrency, reserved) if c]
    return {"maximum_concurrency": min(1000, max(2, min(caps)))} if caps else None
