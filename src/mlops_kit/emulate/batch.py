"""The batch engine rendered into moto (what infra/components/batch.py does with Pulumi), and
`emulate`'s "AWS Batch": jobs run as separate processes (adapters/local/process_runner.py) and their
final states are put on EventBridge as Batch Job State Change events, which the rule delivers
to the `jobs` queue and its function, as on AWS.

moto runs Batch jobs in Docker unless its config says otherwise; tests use
`mock_aws(config={"batch": {"use_docker": False}})` (jobs then SUCCEED at once, or FAIL with
MOTO_SIMPLE_BATCH_FAIL_AFTER=0).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mlops_kit.emulate.aws_resources import ACCOUNT, Resources
from mlops_kit.topology import (
    TRAIN_JOB,
    Topology,
    batch_container_properties,
    batch_event_pattern,
    batch_retry_strategy,
)

NO_DOCKER = {"batch": {"use_docker": False}}
_TRUST: dict[str, Any] = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
    "Action": "sts:AssumeRole"}]}


def image_uri(prefix: str, region: str) -> str:
    """A digest-only URI, as the deployment passes the train image (never a tag)."""
    return f"{ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{prefix}-train@sha256:{'0' * 64}"


def provision_batch(client: Callable[[str], Any], topology: Topology, res: Resources, *,
                    prefix: str) -> None:
    """Compute environment (Fargate, private subnet), job queue, one job definition per
    topology batch job (each with its own execution and job role), the state change rule ->
    the jobs queue; names go into `res` (and so into the functions' env)."""
    if not topology.batch_jobs:
        return
    iam, ec2, batch, events, sqs = (client(s) for s in ("iam", "ec2", "batch", "events", "sqs"))
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName=f"{prefix}-batch", VpcId=vpc,
                                   Description="batch jobs: egress only")["GroupId"]
    # one queue and compute environment for every job (as infra/components/batch.py)
    name = f"{prefix}-{topology.batch_jobs[0].name}"
    # moto needs a service role; AWS uses its service-linked role when none is given
    service = iam.create_role(RoleName=f"{name}-service", AssumeRolePolicyDocument=json.dumps(
        {**_TRUST, "Statement": [{**_TRUST["Statement"][0],
                                  "Principal": {"Service": "batch.amazonaws.com"}}]}))
    vcpus = max(int(j.vcpu) for j in topology.batch_jobs)
    env = batch.create_compute_environment(
        computeEnvironmentName=f"{name}-ce", type="MANAGED", state="ENABLED",
        serviceRole=service["Role"]["Arn"],
        computeResources={"type": "FARGATE", "maxvCpus": max(16, vcpus * 4),
                          "subnets": [subnet], "securityGroupIds": [sg]})
    queue = batch.create_job_queue(
        jobQueueName=f"{name}-queue", state="ENABLED", priority=1,
        computeEnvironmentOrder=[{"order": 1,
                                  "computeEnvironment": env["computeEnvironmentArn"]}])
    res.batch_job_queue = queue["jobQueueArn"]
    reports_to = {j.reports_to for j in topology.batch_jobs}
    for job in topology.batch_jobs:
        job_name = f"{prefix}-{job.name}"
        roles = {kind: iam.create_role(RoleName=f"{job_name}-{kind}",
                                       AssumeRolePolicyDocument=json.dumps(_TRUST))["Role"]["Arn"]
                 for kind in ("execution", "job")}
        definition = batch.register_job_definition(
            jobDefinitionName=f"{job_name}-job", type="container",
            platformCapabilities=["FARGATE"],
            containerProperties=batch_container_properties(
                job, image_uri(prefix, res.region), roles["execution"], roles["job"], res.env()),
            retryStrategy=batch_retry_strategy(job),
            timeout={"attemptDurationSeconds": job.timeout_s}, propagateTags=True)
        res.batch_arns[job.name] = (queue["jobQueueArn"],
                                    definition["jobDefinitionArn"].rsplit(":", 1)[0])
        # the latest active revision, by name: what the submitter's env names
        res.batch_definitions[job.name] = definition["jobDefinitionName"]
    res.batch_job_definition = res.batch_definitions.get(TRAIN_JOB)
    # the queue's final job states -> the one queue every job reports to
    [reports] = reports_to
    rule = events.put_rule(Name=f"{name}-state", EventPattern=json.dumps(
        batch_event_pattern(queue["jobQueueArn"])), State="ENABLED")
    target = res.queue_arns[reports]
    sqs.set_queue_attributes(QueueUrl=res.queue_urls[reports], Attributes={
        "Policy": json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": target,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule["RuleArn"]}}}]})})
    events.put_targets(Rule=f"{name}-state", Targets=[{"Id": "jobs-queue", "Arn": target}])


def state_change_event(job: dict[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """The Batch Job State Change event EventBridge would carry: `job` is describe_jobs'
    shape (or the process engine's state, translated by `process_job`)."""
    return {"version": "0", "id": job["jobId"], "detail-type": "Batch Job State Change",
            "source": "aws.batch", "account": ACCOUNT,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
            "resources": [job.get("jobArn", "")], "detail": {**job, "jobQueue": queue_arn}}


def process_job(state: dict[str, Any], *, region: str) -> dict[str, Any]:
    """A process-engine job's state.json in describe_jobs' shape."""
    attempts = state.get("attempts") or []
    last = attempts[-1] if attempts else {}
    container: dict[str, Any] = {"environment": [{"name": k, "value": v}
                                                 for k, v in sorted(state["env"].items())]}
    if last.get("exit_code") is not None:
        container["exitCode"] = last["exit_code"]
    if state.get("reason"):
        container["reason"] = state["reason"]
    return {"jobArn": f"arn:aws:batch:{region}:{ACCOUNT}:job/{state['job_id']}",
            "jobName": state["name"], "jobId": state["job_id"], "status": state["status"],
            "statusReason": "Essential container in task exited"
            if state["status"] == "FAILED" else None,
            "attempts": [{"container": {"exitCode": a.get("exit_code")}} for a in attempts],
            "container": container}


def forward_process_jobs(runner: Any, events: Any, *, queue_arn: str, region: str) -> int:
    """Put each final state of the process engine's jobs on EventBridge once."""
    sent = 0
    for change in runner.poll():
        if change.status in ("SUCCEEDED", "FAILED"):
            state = runner.state(change.name)
            event = state_change_event(process_job(state, region=region), queue_arn=queue_arn,
                                       region=region)
            events.put_events(Entries=[{"Source": event["source"],
                                        "DetailType": event["detail-type"],
                                        "Detail": json.dumps(event["detail"], default=str),
                                        "Resources": event["resources"]}])
            sent += 1
        runner.reported(change)
    return sent
