"""Training (issue 15, docs/training-engines.md) and scoring (issue 27) on AWS Batch (Fargate)
when the work outgrows the functions. Renders the topology's batch jobs:

- a Fargate (or Fargate Spot) compute environment in private subnets: the stack's own
  (TrainingNetwork) or the ones given in config; no public IP, a security group without ingress;
- one job queue, and per batch job (train-large, score-large) a job definition running the
  train function's image (digest only) with `python3 -m mlops_kit.train_job`, vCPU/memory from
  config, the topology's retry strategy (infrastructure reasons and exit 75 only) and a
  timeout; logs in a log group of its own;
- per job an execution role (pull this image, write its log group) and a job role whose policy
  is `mlops_kit.iam.iam_policy` of that job (the functions' renderer), each least privilege;
- an EventBridge rule on the queue's final job states -> the `jobs` queue (its queue policy
  admits only this rule), which the light `jobs` function consumes.

The queue, compute environment and rule are named after the first job (training's), so a
stack that had only it keeps them. Each job's submitter (train; validate for scoring) gets the
queue and its definition's name (env) and may submit to exactly that queue and definition
(iam_policy renders its grant).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.batch_config import BatchConfig
from infra.components.iam import assume_role_policy
from infra.components.network import NetworkArgs, TrainingNetwork
from infra.components.tags import component_tags
from mlops_kit.iam import PolicyArns, iam_policy
from mlops_kit.topology import (
    ENV_FOR,
    QUEUE_ENV,
    SCORE_JOB,
    STORE_ENV,
    BatchJob,
    Topology,
    batch_container_properties,
    batch_event_pattern,
    batch_retry_strategy,
)

ECR_PULL = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
ECR_AUTH = ("ecr:GetAuthorizationToken",)  # no resource-level permissions: "*"
LOGS = ("logs:CreateLogStream", "logs:PutLogEvents")


@dataclass
class BatchTrainingArgs:
    topology: Topology
    jobs: tuple[BatchJob, ...]  # the topology's batch jobs: one queue, a definition each
    name_prefix: str
    region: str
    config: BatchConfig
    image_uri: pulumi.Input[str]  # repo@sha256:<digest>: the train function's image
    repository_arn: pulumi.Input[str]
    bucket_arns: Mapping[str, pulumi.Input[str]]
    bucket_names: Mapping[str, pulumi.Input[str]]
    table_arn: pulumi.Input[str]
    table_name: pulumi.Input[str]
    queue_arns: Mapping[str, pulumi.Input[str]]
    queue_urls: Mapping[str, pulumi.Input[str]]
    topic_arn: pulumi.Input[str]
    topic_key_arn: pulumi.Input[str] | None = None
    log_retention_days: int = 30
    train_memory_mb: int = 3008  # the train function's memory (routing budget)
    tags: Mapping[str, str] = field(default_factory=dict)


def job_environment(args: BatchTrainingArgs, job: BatchJob) -> dict[str, pulumi.Input[str]]:
    """What the job's backend needs (names, never secrets): what the train function gets."""
    env: dict[str, pulumi.Input[str]] = {ENV_FOR["backend"]: "aws", "MLOPSKIT_REGION": args.region}
    for store in args.topology.stores:
        env[STORE_ENV[store.name]] = args.bucket_names[store.name]
    env[ENV_FOR["table"]] = args.table_name
    for queue in args.topology.queues:
        env[QUEUE_ENV[queue.name]] = args.queue_urls[queue.name]
    if job.publishes:
        env[ENV_FOR["topic"]] = args.topic_arn
    return env


def container_properties(job: BatchJob, image: str, execution_role: str, job_role: str,
                         log_group: str, region: str, env: Mapping[str, str],
                         config: BatchConfig | None = None) -> str:
    props = batch_container_properties(
        job, image, execution_role, job_role, env,
        {"awslogs-group": log_group, "awslogs-region": region,
         "awslogs-stream-prefix": job.name})
    cfg = config or BatchConfig()
    if cfg.own_vpc and cfg.network == "public":  # no NAT, no endpoints: the task's own IP
        props["networkConfiguration"] = {"assignPublicIp": "ENABLED"}
    if cfg.ephemeral_storage_gb is not None:
        props["ephemeralStorage"] = {"sizeInGiB": cfg.ephemeral_storage_gb}
    return json.dumps(props, sort_keys=True)


class BatchTraining(pulumi.ComponentResource):
    def __init__(self, name: str, args: BatchTrainingArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlopskit:batch:BatchTraining", name, None, opts)
        cfg, first = args.config, args.jobs[0]
        p, tags = f"{args.name_prefix}-{first.name}", {**component_tags("batch"), **args.tags}
        child = pulumi.ResourceOptions(parent=self)

        if cfg.own_vpc:
            net = TrainingNetwork("network", NetworkArgs(args.name_prefix, args.region,
                                                         cfg.network, cfg.zones), child)
            subnets: Sequence[pulumi.Input[str]] = net.subnet_ids
            groups: Sequence[pulumi.Input[str]] = net.security_group_ids
        else:
            subnets, groups = list(cfg.subnet_ids), list(cfg.security_group_ids)

        # Compute environment and queue are autonamed (logical name + random suffix): a change
        # that replaces them (spot on/off, subnets) creates the new one before deleting the
        # old, which a fixed name would collide with.
        self.compute_environment = aws.batch.ComputeEnvironment(
            f"{p}-ce", type="MANAGED", state="ENABLED",
            compute_resources={"type": "FARGATE_SPOT" if cfg.spot else "FARGATE",
                               "max_vcpus": cfg.max_vcpus, "subnets": subnets,
                               "security_group_ids": groups},
            # no service_role: Batch uses its service-linked role (AWSServiceRoleForBatch)
            tags=tags, opts=child)
        self.job_queue = aws.batch.JobQueue(
            f"{p}-queue", state="ENABLED", priority=1,
            compute_environment_orders=[{"order": 1, "compute_environment":
                                         self.compute_environment.arn}],
            tags=tags, opts=child)

        self.job_definitions: dict[str, aws.batch.JobDefinition] = {}
        self.function_env: dict[str, dict[str, pulumi.Input[str]]] = {}
        self.policy_arns: dict[str, tuple[pulumi.Input[str], pulumi.Input[str]]] = {}
        for job in args.jobs:
            definition = self._job(job, args, tags)
            self.job_definitions[job.name] = definition
            # what the submitting function needs: names (env) and ARNs (its policy)
            env: dict[str, pulumi.Input[str]] = {ENV_FOR["batch_job_queue"]: self.job_queue.arn}
            if job.name == SCORE_JOB:  # validate: its attempts and timeout are the definition's
                env[ENV_FOR["score_job_definition"]] = definition.name
            else:
                env.update({
                    ENV_FOR["batch_job_definition"]: definition.name,
                    "MLOPSKIT_BATCH_ATTEMPTS": str(cfg.attempts),
                    "MLOPSKIT_BATCH_TIMEOUT_S": str(job.timeout_s),
                    "MLOPSKIT_TRAIN_FUNCTION_MEMORY_MB": str(args.train_memory_mb),
                    "MLOPSKIT_TRAIN_MAX_FUNCTION_ROWS": str(cfg.max_function_rows),
                    "MLOPSKIT_TRAIN_MEMORY_FRACTION": f"{cfg.memory_fraction:g}"})
            self.function_env.setdefault(job.submitted_by, {}).update(env)
            self.policy_arns[job.name] = (self.job_queue.arn, definition.arn_prefix)
        self.job_definition = self.job_definitions[first.name]

        [reports_to] = {j.reports_to for j in args.jobs}  # one rule: the queue's final states
        self.rule = aws.cloudwatch.EventRule(
            f"{p}-state", description=f"final states of {args.name_prefix} batch jobs -> the "
            f"{reports_to} queue",
            event_pattern=self.job_queue.arn.apply(
                lambda arn: json.dumps(batch_event_pattern(arn))),
            tags=tags, opts=child)
        target_arn = args.queue_arns[reports_to]
        queue_policy = aws.sqs.QueuePolicy(
            f"{p}-events-to-{reports_to}", queue_url=args.queue_urls[reports_to],
            policy=pulumi.Output.all(target_arn, self.rule.arn).apply(lambda r: json.dumps({
                "Version": "2012-10-17", "Statement": [{
                    "Sid": "BatchStateChanges", "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage", "Resource": r[0],
                    "Condition": {"ArnEquals": {"aws:SourceArn": r[1]}}}]})),
            opts=child)
        aws.cloudwatch.EventTarget(
            f"{p}-state-to-{reports_to}", rule=self.rule.name, arn=target_arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[queue_policy]))

        self.register_outputs({"job_queue": self.job_queue.arn,
                               "job_definitions": {n: d.name for n, d in
                                                   self.job_definitions.items()}})

    def _job(self, job: BatchJob, args: BatchTrainingArgs,
             tags: Mapping[str, str]) -> aws.batch.JobDefinition:
        """One job's log group, execution role, job role and job definition."""
        cfg, p = args.config, f"{args.name_prefix}-{job.name}"
        child = pulumi.ResourceOptions(parent=self)
        log_group = aws.cloudwatch.LogGroup(
            f"{p}-logs", name=f"/aws/batch/{p}", retention_in_days=args.log_retention_days,
            tags=tags, opts=child)
        trust = assume_role_policy("ecs-tasks.amazonaws.com")
        execution_role = aws.iam.Role(
            f"{p}-execution-role", assume_role_policy=trust, tags=tags, opts=child,
            description=f"mlops-kit {job.name}: pull the train image, write the job's logs")
        execution_policy = aws.iam.RolePolicy(
            f"{p}-execution-policy", role=execution_role.id, opts=child,
            policy=pulumi.Output.all(args.repository_arn, log_group.arn).apply(
                lambda r: json.dumps({"Version": "2012-10-17", "Statement": [
                    {"Sid": "PullTrainImage", "Effect": "Allow", "Action": list(ECR_PULL),
                     "Resource": [r[0]]},
                    {"Sid": "RegistryLogin", "Effect": "Allow", "Action": list(ECR_AUTH),
                     "Resource": ["*"]},
                    {"Sid": "JobLogs", "Effect": "Allow", "Action": list(LOGS),
                     "Resource": [f"{r[1]}:*"]}]})))
        job_role = aws.iam.Role(
            f"{p}-job-role", assume_role_policy=trust, tags=tags, opts=child,
            description=f"mlops-kit {job.name}: least privilege (iam.iam_policy)")
        job_policy = aws.iam.RolePolicy(
            f"{p}-job-policy", role=job_role.id, opts=child,
            policy=self._job_policy(args, job))
        if job.name == args.jobs[0].name:  # the first job's, as before there were several
            self.log_group, self.execution_role, self.job_role = (
                log_group, execution_role, job_role)
        env = job_environment(args, job)
        keys = sorted(env)
        return aws.batch.JobDefinition(
            f"{p}-job", name=f"{p}-job", type="container", platform_capabilities=["FARGATE"],
            container_properties=pulumi.Output.all(
                args.image_uri, execution_role.arn, job_role.arn, log_group.name,
                *[env[k] for k in keys]).apply(lambda r: container_properties(
                    job, r[0], r[1], r[2], r[3], args.region, dict(zip(keys, r[4:], strict=True)),
                    cfg)),
            retry_strategy=_retry_strategy(job, cfg.attempts),
            timeout={"attempt_duration_seconds": job.timeout_s}, propagate_tags=True,
            tags=tags, opts=pulumi.ResourceOptions(parent=self,
                                                   depends_on=[execution_policy, job_policy]))

    @staticmethod
    def _job_policy(args: BatchTrainingArgs, job: BatchJob) -> pulumi.Output[str]:
        stores = [s.name for s in args.topology.stores]
        queues = [q.name for q in args.topology.queues]
        resolved = pulumi.Output.all(
            [args.bucket_arns[s] for s in stores], args.table_arn,
            [args.queue_arns[q] for q in queues], args.topic_arn, args.topic_key_arn)
        return resolved.apply(lambda r: json.dumps(iam_policy(args.topology, job.name,
                                                              PolicyArns(
            buckets=dict(zip(stores, r[0], strict=True)), table=r[1],
            queues=dict(zip(queues, r[2], strict=True)), topic=r[3], topic_key=r[4]))))


def _retry_strategy(job: BatchJob, attempts: int) -> aws.batch.JobDefinitionRetryStrategyArgsDict:
    """topology.batch_retry_strategy in the provider's argument names."""
    strategy = batch_retry_strategy(job, attempts)
    rules: list[aws.batch.JobDefinitionRetryStrategyEvaluateOnExitArgsDict] = []
    for rule in strategy["evaluateOnExit"]:
        out: aws.batch.JobDefinitionRetryStrategyEvaluateOnExitArgsDict = {
            "action": rule["action"].lower()}
        if "onExitCode" in rule:
            out["on_exit_code"] = rule["onExitCode"]
        if "onReason" in rule:
            out["on_reason"] = rule["onReason"]
        if "onStatusReason" in rule:
            out["on_status_reason"] = rule["onStatusReason"]
        if set(rule) - {"action", "onExitCode", "onReason", "onStatusReason"}:
            raise ValueError(f"a retry rule the provider has no argument for: {rule}")
        rules.append(out)
    return {"attempts": strategy["attempts"], "evaluate_on_exits": rules}
