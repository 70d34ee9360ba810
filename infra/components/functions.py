"""Functions: one Lambda per topology function, each with its own role, policy and log group.

Light functions ship as the reproducible zips from infra/packaging.py, uploaded to a private code
bucket under a content-addressed key (zips over 50 MB cannot be sent inline, and an unchanged
zip is not re-uploaded); training ships as a container image. Queue consumers get an event source
mapping reporting partial batch failures, so one bad message does not redeliver the batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.iam import Arns, assume_role_policy, policy_document
from infra.components.storage import SecureBucket, SecureBucketArgs
from infra.packaging import Artifact
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
    image_uri: pulumi.Input[str] | None  # for image functions
    region: str
    log_retention_days: int = 30
    memory: Mapping[str, int] = field(default_factory=dict)  # overrides, MB
    sse_algorithm: str = "aws:kms"
    protect: bool = True


def environment(fn: Function, args: FunctionsArgs) -> dict[str, pulumi.Input[str]]:
    """Names (never secrets) the function's adapters need; permissions are the policy's job.

    The AWS backend factory builds every adapter at cold start (both stores, the table, both
    queues), so every function gets every name; what it may *do* with them is its policy.
    The topic only goes to publishers: with it set, the notifier publishes.
    """
    env: dict[str, pulumi.Input[str]] = {ENV_FOR["backend"]: "aws", REGION_ENV: args.region}
    for store in args.topology.stores:
        env[STORE_ENV[store.name]] = args.bucket_names[store.name]
    env[ENV_FOR["table"]] = args.table_name
    for queue in args.topology.queues:
        env[QUEUE_ENV[queue.name]] = args.queue_urls[queue.name]
    if fn.publishes:
        env[ENV_FOR["topic"]] = args.topic_arn
    return env


class Functions(pulumi.ComponentResource):
    def __init__(self, name: str, args: FunctionsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlopskit:functions:Functions", name, None, opts)
        topo, prefix = args.topology, args.name_prefix
        self.functions: dict[str, aws.lambda_.Function] = {}
        self.roles: dict[str, aws.iam.Role] = {}
        self.log_groups: dict[str, aws.cloudwatch.LogGroup] = {}
        self.mappings: dict[str, aws.lambda_.EventSourceMapping] = {}
        code_bucket = None
        if any(f.package == "zip" for f in topo.functions):
            code_bucket = SecureBucket(
                f"{prefix}-code", SecureBucketArgs(args.sse_algorithm, protect=False),
                pulumi.ResourceOptions(parent=self)).bucket

        for fn in topo.functions:
            child = pulumi.ResourceOptions(parent=self)
            fn_name = f"{prefix}-{fn.name}"
            log_group = aws.cloudwatch.LogGroup(
                f"{fn_name}-logs", name=f"/aws/lambda/{fn_name}",
                retention_in_days=args.log_retention_days, opts=child)
            role = aws.iam.Role(f"{fn_name}-role", assume_role_policy=assume_role_policy(),
                                description=f"mlops-kit {fn.name}: least privilege", opts=child)
            consumes = tuple(q.name for q in topo.queues if q.consumer == fn.name)
            policy = aws.iam.RolePolicy(
                f"{fn_name}-policy", role=role.id,
                policy=self._policy(fn, args, log_group.arn, consumes), opts=child)

            common = dict(
                name=fn_name, role=role.arn, memory_size=args.memory.get(fn.name, fn.memory_mb),
                timeout=fn.timeout_s, reserved_concurrent_executions=fn.reserved_concurrency,
                architectures=["x86_64"], tracing_config={"mode": "Active"},
                environment={"variables": environment(fn, args)},
                logging_config={"log_format": "JSON", "log_group": log_group.name},
                # the role must hold its permissions before the function (and its mappings) use it
                opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, log_group]))
            if fn.package == "zip":
                art = args.zips[fn.name]
                obj = aws.s3.BucketObjectv2(
                    f"{fn_name}-code", bucket=code_bucket.id, key=f"{fn.name}/{art.sha256}.zip",
                    source=pulumi.FileAsset(art.path), opts=child)
                function = aws.lambda_.Function(
                    fn_name, package_type="Zip", runtime=RUNTIME, handler=fn.handler,
                    s3_bucket=code_bucket.id, s3_key=obj.key,
                    source_code_hash=art.base64_sha256, **common)
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
                    # poll no faster than the function may run, or throttled messages burn
                    # receives and land in the DLQ unprocessed
                    scaling_config={"maximum_concurrency": max(2, fn.reserved_concurrency)}
                    if fn.reserved_concurrency else None,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]))
            self.functions[fn.name] = function
            self.roles[fn.name] = role
            self.log_groups[fn.name] = log_group

        self.names = {n: f.name for n, f in self.functions.items()}
        self.register_outputs({"names": self.names,
                               "arns": {n: f.arn for n, f in self.functions.items()}})

    @staticmethod
    def _policy(fn: Function, args: FunctionsArgs, log_group_arn: pulumi.Output[str],
                consumes: tuple[str, ...]) -> pulumi.Output[str]:
        stores = [s.name for s in args.topology.stores]
        queues = [q.name for q in args.topology.queues]
        resolved = pulumi.Output.all(
            [args.bucket_arns[s] for s in stores], args.table_arn,
            [args.queue_arns[q] for q in queues], args.topic_arn, args.topic_key_arn,
            log_group_arn)
        return resolved.apply(lambda r: policy_document(fn, Arns(
            buckets=dict(zip(stores, r[0], strict=True)), table=r[1],
            queues=dict(zip(queues, r[2], strict=True)), topic=r[3], topic_key=r[4],
            log_group=r[5]), consumes))
