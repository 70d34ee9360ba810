"""Training on AWS Batch (infra/components/batch.py + network.py), rendered under Pulumi mocks
that answer like the provider (Batch ARNs with a job definition's :revision, EC2 ids, the
availability zones invoke). One test per control, asserting on the recorded graph."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from infra.batch_config import BatchConfig, parse_batch
from infra.config import ConfigError, parse_config
from mlops_kit.iam import PolicyArns, iam_policy
from mlops_kit.topology import batch_event_pattern, with_batch
from tests.infra.harness import ACCOUNT, REGION, Graph, base_config, run_program
from tests.infra.iam_eval import allows

P = "mlk-test"
JOB = f"{P}-train-large"
ROOT = Path(__file__).resolve().parents[2]
CE, JQ, JD = ("aws:batch/computeEnvironment:ComputeEnvironment", "aws:batch/jobQueue:JobQueue",
              "aws:batch/jobDefinition:JobDefinition")
ROLE, POLICY = "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy"


def batch_config(**fields) -> str:
    return json.dumps({"enabled": True, **fields})


@pytest.fixture(scope="module")
def batch_graph(package_dir) -> Graph:
    return run_program(base_config(package_dir, batch=batch_config(vcpu=8, memoryMb=32768,
                                                                   timeoutMinutes=90, zones=2)))


def container(graph: Graph) -> dict:
    return json.loads(graph.one(JD, f"{JOB}-job").inputs["containerProperties"])


def role_policy(graph: Graph, name: str) -> dict:
    return json.loads(graph.one(POLICY, name).inputs["policy"])


def test_off_by_default(graph):
    assert not graph.of(CE) and not graph.of(JQ) and not graph.of(JD)
    assert not graph.of("aws:ec2/vpc:Vpc")
    names = {r.name for r in graph.of("aws:lambda/function:Function")}
    assert f"{P}-jobs" not in names and "batch_job_queue" not in graph.outputs


def test_compute_environment_is_fargate_in_private_subnets_without_ingress(batch_graph):
    ce = batch_graph.one(CE, f"{JOB}-ce").inputs
    assert ce["type"] == "MANAGED" and ce["computeResources"]["type"] == "FARGATE"
    assert ce["computeResources"]["maxVcpus"] == 64
    subnets = {r.name: r for r in batch_graph.of("aws:ec2/subnet:Subnet")}
    private = [f"{P}-batch-private-0", f"{P}-batch-private-1"]
    assert sorted(ce["computeResources"]["subnets"]) == sorted(
        f"subnet-{_hex(n)}" for n in private)
    assert all(subnets[n].inputs["mapPublicIpOnLaunch"] is False for n in private)
    zones = {subnets[n].inputs["availabilityZone"] for n in private}
    assert len(zones) == 2  # batch.zones 2: two availability zones
    [sg] = [r for r in batch_graph.of("aws:ec2/securityGroup:SecurityGroup")
            if r.name == f"{P}-batch-tasks"]
    assert ce["computeResources"]["securityGroupIds"] == [f"sg-{_hex(sg.name)}"]
    assert not sg.inputs.get("ingress")
    assert [e["fromPort"] for e in sg.inputs["egress"]] == [443]
    assert "serviceRole" not in ce  # Batch's service-linked role
    assert container(batch_graph)["networkConfiguration"] == {"assignPublicIp": "DISABLED"}


def _hex(name: str) -> str:
    import hashlib

    return hashlib.sha256(name.encode()).hexdigest()[:17]


def test_default_network_reaches_aws_through_endpoints_only(batch_graph):
    endpoints = {r.inputs["serviceName"].rsplit(".", 1)[-1] if r.inputs["vpcEndpointType"]
                 == "Gateway" else r.inputs["serviceName"].split(f"{REGION}.", 1)[1]: r.inputs
                 for r in batch_graph.of("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert set(endpoints) == {"s3", "dynamodb", "ecr.api", "ecr.dkr", "logs", "sns"}
    for name in ("ecr.api", "ecr.dkr", "logs", "sns"):
        assert endpoints[name]["vpcEndpointType"] == "Interface"
        assert endpoints[name]["privateDnsEnabled"] is True
    assert not batch_graph.of("aws:ec2/natGateway:NatGateway")
    assert not batch_graph.of("aws:ec2/internetGateway:InternetGateway")
    vpc = batch_graph.one("aws:ec2/vpc:Vpc", f"{P}-batch-vpc").inputs
    assert vpc["enableDnsHostnames"] and vpc["enableDnsSupport"]  # private DNS needs both
    [esg] = [r for r in batch_graph.of("aws:ec2/securityGroup:SecurityGroup")
             if r.name == f"{P}-batch-endpoints"]
    assert esg.inputs["ingress"][0]["securityGroups"] == [f"sg-{_hex(f'{P}-batch-tasks')}"]


def test_nat_network_routes_private_subnets_through_one_nat(package_dir):
    g = run_program(base_config(package_dir, batch=batch_config(network="nat")))
    [nat] = g.of("aws:ec2/natGateway:NatGateway")
    assert nat.inputs["subnetId"] == f"subnet-{_hex(f'{P}-batch-public')}"
    [route] = g.of("aws:ec2/route:Route")
    assert route.inputs["destinationCidrBlock"] == "0.0.0.0/0"
    assert route.inputs["natGatewayId"] == f"nat-{_hex(nat.name)}"
    kinds = {r.inputs["vpcEndpointType"] for r in g.of("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert kinds == {"Gateway"}  # S3 + DynamoDB stay off the NAT's per-GB charge


def test_a_given_vpc_is_used_as_is(package_dir):
    g = run_program(base_config(package_dir, batch=batch_config(
        subnetIds=["subnet-0123456789abcdef0"], securityGroupIds=["sg-0123456789abcdef0"])))
    assert not g.of("aws:ec2/vpc:Vpc") and not g.of("aws:ec2/vpcEndpoint:VpcEndpoint")
    res = g.one(CE, f"{JOB}-ce").inputs["computeResources"]
    assert res["subnets"] == ["subnet-0123456789abcdef0"]
    assert res["securityGroupIds"] == ["sg-0123456789abcdef0"]


def test_job_queue_feeds_the_compute_environment(batch_graph):
    q = batch_graph.one(JQ, f"{JOB}-queue").inputs
    ce_arn = batch_graph.one(CE, f"{JOB}-ce").state["arn"]
    assert q["state"] == "ENABLED"
    assert q["computeEnvironmentOrders"] == [{"order": 1, "computeEnvironment": ce_arn}]


def test_job_definition_runs_the_train_image_sized_from_config(batch_graph):
    jd = batch_graph.one(JD, f"{JOB}-job").inputs
    c = container(batch_graph)
    train = batch_graph.one("aws:lambda/function:Function", f"{P}-train").inputs
    assert c["image"] == train["imageUri"] and "@sha256:" in c["image"]
    assert ":" not in c["image"].split("@")[0].rsplit("/", 1)[-1]  # digest only, no tag
    assert c["command"] == ["python3", "-m", "mlops_kit.train_job"]
    assert c["resourceRequirements"] == [{"type": "VCPU", "value": "8"},
                                         {"type": "MEMORY", "value": "32768"}]
    assert jd["platformCapabilities"] == ["FARGATE"] and jd["type"] == "container"
    assert jd["timeout"] == {"attemptDurationSeconds": 90 * 60}
    env = {e["name"]: e["value"] for e in c["environment"]}
    assert env["MLOPSKIT_BACKEND"] == "aws" and env["MLOPSKIT_TABLE_NAME"] == f"{P}-registry"
    assert not any("KEY" in k or "SECRET" in k or "TOKEN" in k for k in env)  # names only
    logs = c["logConfiguration"]
    assert logs["logDriver"] == "awslogs"
    assert logs["options"]["awslogs-group"] == f"/aws/batch/{JOB}"
    group = batch_graph.one("aws:cloudwatch/logGroup:LogGroup", f"{JOB}-logs").inputs
    assert group["retentionInDays"] == 30


def test_retry_only_for_infrastructure_and_exit_75(batch_graph):
    rs = batch_graph.one(JD, f"{JOB}-job").inputs["retryStrategy"]
    assert rs["attempts"] == 2
    rules = rs["evaluateOnExits"]
    assert len(rules) <= 5 and rules[-1] == {"onStatusReason": "*", "action": "exit"}
    assert [r["action"] for r in rules[:-1]] == ["retry"] * (len(rules) - 1)
    assert {"onExitCode": "75", "action": "retry"} in rules
    assert {"onStatusReason": "Your Spot Task was interrupted*", "action": "retry"} in rules


def test_execution_role_pulls_this_image_and_writes_these_logs_only(batch_graph):
    role = batch_graph.one(ROLE, f"{JOB}-execution-role").inputs
    assert json.loads(role["assumeRolePolicy"])["Statement"][0]["Principal"] == {
        "Service": "ecs-tasks.amazonaws.com"}
    policy = role_policy(batch_graph, f"{JOB}-execution-policy")
    # the image it runs: base_config's trainImageUri (repository mlk-train), not the stack's
    # own, empty repository (issue 25, item 8)
    repo = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/mlk-train"
    group = batch_graph.one("aws:cloudwatch/logGroup:LogGroup", f"{JOB}-logs").state["arn"]
    assert allows(policy, "ecr:BatchGetImage", repo)
    assert allows(policy, "ecr:GetAuthorizationToken", "*")
    assert allows(policy, "logs:PutLogEvents", f"{group}:log-stream:train-large/default/1")
    assert not allows(policy, "ecr:BatchGetImage", repo.replace("mlk-train", "other"))
    assert not allows(policy, "logs:PutLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:"
                                                   "log-group:/aws/lambda/x:log-stream:y")
    assert not allows(policy, "s3:GetObject", "arn:aws:s3:::anything/x")
    definition = container(batch_graph)
    assert definition["executionRoleArn"] == batch_graph.one(ROLE, f"{JOB}-execution-role"
                                                             ).state["arn"]


def test_job_role_is_the_topology_rendering_and_least_privilege(batch_graph):
    policy = role_policy(batch_graph, f"{JOB}-job-policy")
    topology = with_batch(_stack_topology())
    buckets = {s.name: batch_graph.one("aws:s3/bucket:Bucket", f"{P}-{s.name}").state["arn"]
               for s in topology.stores}
    table = batch_graph.one("aws:dynamodb/table:Table", f"{P}-registry").state["arn"]
    arns = PolicyArns(
        buckets=buckets, table=table,
        queues={q.name: f"arn:aws:sqs:{REGION}:{ACCOUNT}:{P}-{q.name}" for q in topology.queues},
        topic=batch_graph.one("aws:sns/topic:Topic", f"{P}-alerts").state["arn"],
        topic_key=batch_graph.one("aws:kms/key:Key", f"{P}-alerts-key").state["arn"])
    assert policy == iam_policy(topology, "train-large", arns)  # the one renderer
    data, artifacts = buckets["data"], buckets["artifacts"]
    # what the job calls: the spec, the dataset, the profile, the artifacts, the registry
    for action, resource in [("s3:GetObject", f"{data}/specs/churn.yaml"),
                             ("s3:GetObject", f"{data}/datasets/churn/big.csv"),
                             ("s3:GetObject", f"{artifacts}/reports/churn/validation/x.json"),
                             ("s3:PutObject", f"{artifacts}/models/churn/000003/model.onnx"),
                             ("dynamodb:GetItem", table), ("dynamodb:PutItem", table),
                             ("sns:Publish", arns.topic)]:
        assert allows(policy, action, resource), (action, resource)
    for action, resource in [("s3:PutObject", f"{data}/datasets/churn/big.csv"),
                             ("dynamodb:DeleteItem", table),
                             ("batch:SubmitJob", "*"), ("sqs:SendMessage", "*"),
                             ("logs:PutLogEvents", "*")]:
        assert not allows(policy, action, resource), (action, resource)
    assert container(batch_graph)["jobRoleArn"] == batch_graph.one(ROLE, f"{JOB}-job-role"
                                                                   ).state["arn"]


def _stack_topology():
    from mlops_kit.topology import default_topology

    return default_topology()


def test_train_function_may_submit_to_this_queue_and_definition_only(batch_graph):
    policy = json.loads(batch_graph.one(POLICY, f"{P}-train-policy").inputs["policy"])
    queue = batch_graph.one(JQ, f"{JOB}-queue").state["arn"]
    definition = batch_graph.one(JD, f"{JOB}-job").state
    later = definition["arnPrefix"] + ":7"  # a later revision of the same definition
    assert allows(policy, "batch:SubmitJob", queue)
    assert allows(policy, "batch:SubmitJob", later)
    assert allows(policy, "batch:ListJobs", "*")  # no resource-level permissions
    assert not allows(policy, "batch:SubmitJob", queue.replace("train-large", "other"))
    assert not allows(policy, "batch:SubmitJob", later.replace("train-large-job", "other-job"))
    assert not allows(policy, "batch:TerminateJob", queue)
    env = batch_graph.one("aws:lambda/function:Function", f"{P}-train").inputs[
        "environment"]["variables"]
    assert env["MLOPSKIT_BATCH_JOB_QUEUE"] == queue
    assert env["MLOPSKIT_BATCH_JOB_DEFINITION"] == f"{JOB}-job"  # latest active revision
    assert env["MLOPSKIT_BATCH_TIMEOUT_S"] == str(90 * 60)
    assert env["MLOPSKIT_TRAIN_MAX_FUNCTION_ROWS"] == "1000000"
    assert env["MLOPSKIT_TRAIN_FUNCTION_MEMORY_MB"] == "3008"
    # validate gets the queue too, for the scoring job (below); no other function does
    others = [r for r in batch_graph.of("aws:lambda/function:Function")
              if r.name not in (f"{P}-train", f"{P}-validate")]
    assert all("MLOPSKIT_BATCH_JOB_QUEUE" not in r.inputs["environment"]["variables"]
               for r in others)


SCORE = f"{P}-score-large"


def _arns(graph: Graph, topology) -> PolicyArns:
    buckets = {s.name: graph.one("aws:s3/bucket:Bucket", f"{P}-{s.name}").state["arn"]
               for s in topology.stores}
    return PolicyArns(
        buckets=buckets, table=graph.one("aws:dynamodb/table:Table", f"{P}-registry").state["arn"],
        queues={q.name: f"arn:aws:sqs:{REGION}:{ACCOUNT}:{P}-{q.name}" for q in topology.queues},
        topic=graph.one("aws:sns/topic:Topic", f"{P}-alerts").state["arn"],
        topic_key=graph.one("aws:kms/key:Key", f"{P}-alerts-key").state["arn"])


def test_one_definition_per_batch_job_on_one_queue_and_compute_environment(batch_graph):
    """Issue 27: scoring past the functions runs on the same queue as training, under a
    definition (and roles) of its own; one rule reports both to the jobs queue."""
    assert len(batch_graph.of(CE)) == len(batch_graph.of(JQ)) == 1
    assert [r.name for r in batch_graph.of("aws:cloudwatch/eventRule:EventRule")
            if r.name.startswith(P + "-") and "large" in r.name] == [f"{JOB}-state"]
    definitions = {r.name: json.loads(r.inputs["containerProperties"])
                   for r in batch_graph.of(JD)}
    assert set(definitions) == {f"{JOB}-job", f"{SCORE}-job"}
    score = definitions[f"{SCORE}-job"]
    assert score["image"] == definitions[f"{JOB}-job"]["image"]
    assert score["command"] == ["python3", "-m", "mlops_kit.train_job"]
    assert score["jobRoleArn"] == batch_graph.one(ROLE, f"{SCORE}-job-role").state["arn"]
    assert score["executionRoleArn"] == batch_graph.one(ROLE, f"{SCORE}-execution-role"
                                                        ).state["arn"]
    assert score["jobRoleArn"] != definitions[f"{JOB}-job"]["jobRoleArn"]
    assert score["logConfiguration"]["options"]["awslogs-group"] == f"/aws/batch/{SCORE}"
    assert score["networkConfiguration"] == {"assignPublicIp": "DISABLED"}
    jd = batch_graph.one(JD, f"{SCORE}-job").inputs
    assert jd["platformCapabilities"] == ["FARGATE"] and jd["timeout"] == {
        "attemptDurationSeconds": 90 * 60}
    assert batch_graph.outputs["score_job_definition"] == f"{SCORE}-job"


def test_each_job_role_holds_exactly_its_jobs_grants(batch_graph):
    """Each job role's policy is iam_policy of that job: scoring's reads scoring/ and the
    models, writes predictions/, quarantine and captures; nothing of training's, and back."""
    topology = with_batch(_stack_topology())
    arns = _arns(batch_graph, topology)
    for job in topology.batch_jobs:
        assert role_policy(batch_graph, f"{P}-{job.name}-job-policy") == iam_policy(
            topology, job.name, arns), job.name
    score = role_policy(batch_graph, f"{SCORE}-job-policy")
    train = role_policy(batch_graph, f"{JOB}-job-policy")
    data, artifacts, table = arns.buckets["data"], arns.buckets["artifacts"], arns.table
    for action, resource in [("s3:GetObject", f"{data}/scoring/churn/nightly.csv"),
                             ("s3:PutObject", f"{data}/predictions/churn/nightly/part-00000.parquet"),
                             ("s3:GetObject", f"{data}/predictions/churn/nightly/_manifest.json"),
                             ("s3:PutObject", f"{data}/quarantine/scoring/churn/nightly.csv"),
                             ("s3:GetObject", f"{artifacts}/models/churn/000003/model.onnx"),
                             ("s3:PutObject", f"{artifacts}/captures/churn/x.jsonl"),
                             ("dynamodb:GetItem", table), ("dynamodb:PutItem", table),
                             ("sns:Publish", arns.topic)]:
        assert allows(score, action, resource), (action, resource)
        assert not allows(train, action, resource) or resource in (
            f"{artifacts}/models/churn/000003/model.onnx", table, arns.topic), (action, resource)
    for action, resource in [("s3:GetObject", f"{data}/datasets/churn/big.csv"),
                             ("s3:GetObject", f"{data}/specs/churn.yaml"),
                             ("s3:PutObject", f"{artifacts}/models/churn/000003/model.onnx"),
                             ("s3:PutObject", f"{data}/scoring/churn/nightly.csv"),
                             ("dynamodb:DeleteItem", table), ("dynamodb:Query", table),
                             ("batch:SubmitJob", "*"), ("sqs:SendMessage", "*")]:
        assert not allows(score, action, resource), (action, resource)


def test_validate_may_submit_the_scoring_definition_only(batch_graph):
    policy = role_policy(batch_graph, f"{P}-validate-policy")
    queue = batch_graph.one(JQ, f"{JOB}-queue").state["arn"]
    score = batch_graph.one(JD, f"{SCORE}-job").state["arnPrefix"]
    train = batch_graph.one(JD, f"{JOB}-job").state["arnPrefix"]
    assert allows(policy, "batch:SubmitJob", queue)
    assert allows(policy, "batch:SubmitJob", score + ":3")
    assert allows(policy, "batch:ListJobs", "*")
    assert not allows(policy, "batch:SubmitJob", train + ":1")
    assert not allows(policy, "batch:TerminateJob", queue)
    assert not allows(role_policy(batch_graph, f"{P}-train-policy"), "batch:SubmitJob",
                      score + ":1")
    env = batch_graph.one("aws:lambda/function:Function", f"{P}-validate").inputs[
        "environment"]["variables"]
    assert env["MLOPSKIT_BATCH_JOB_QUEUE"] == queue
    assert env["MLOPSKIT_SCORE_JOB_DEFINITION"] == f"{SCORE}-job"
    assert "MLOPSKIT_BATCH_JOB_DEFINITION" not in env


def test_final_job_states_reach_the_jobs_queue_and_only_from_this_rule(batch_graph):
    rule = batch_graph.one("aws:cloudwatch/eventRule:EventRule", f"{JOB}-state")
    queue_arn = batch_graph.one(JQ, f"{JOB}-queue").state["arn"]
    assert json.loads(rule.inputs["eventPattern"]) == batch_event_pattern(queue_arn)
    target = batch_graph.one("aws:cloudwatch/eventTarget:EventTarget", f"{JOB}-state-to-jobs")
    jobs_queue = batch_graph.one("aws:sqs/queue:Queue", f"{P}-jobs").state
    assert target.inputs["arn"] == jobs_queue["arn"] and target.inputs["rule"] == rule.state["name"]
    policy = json.loads(batch_graph.one("aws:sqs/queuePolicy:QueuePolicy",
                                        f"{JOB}-events-to-jobs").inputs["policy"])
    [stmt] = policy["Statement"]
    assert stmt["Principal"] == {"Service": "events.amazonaws.com"}
    assert stmt["Resource"] == jobs_queue["arn"] and stmt["Action"] == "sqs:SendMessage"
    assert stmt["Condition"] == {"ArnEquals": {"aws:SourceArn": rule.state["arn"]}}


def test_jobs_function_consumes_the_state_changes_with_a_light_zip(batch_graph):
    fn = batch_graph.one("aws:lambda/function:Function", f"{P}-jobs").inputs
    assert fn["packageType"] == "Zip" and fn["handler"] == "jobs.handler"
    mapping = batch_graph.one("aws:lambda/eventSourceMapping:EventSourceMapping",
                              f"{P}-jobs-to-jobs").inputs
    assert mapping["eventSourceArn"] == batch_graph.one("aws:sqs/queue:Queue",
                                                        f"{P}-jobs").state["arn"]
    policy = json.loads(batch_graph.one(POLICY, f"{P}-jobs-policy").inputs["policy"])
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "sns:Publish"} <= actions
    assert not any(a.startswith(("s3:", "batch:")) for a in actions)
    assert batch_graph.one("aws:sqs/queue:Queue", f"{P}-jobs-dlq")  # poison events: a DLQ


def test_every_batch_resource_is_tagged_and_parented(batch_graph):
    for r in batch_graph.of(CE) + batch_graph.of(JQ) + batch_graph.of(JD) \
            + batch_graph.of("aws:ec2/vpc:Vpc"):
        assert r.inputs["tags"]["mlops-kit:component"].startswith("batch")
        assert batch_graph.parents[(r.typ, r.name)] in ("mlopskit:batch:BatchTraining",
                                                        "mlopskit:batch:TrainingNetwork")


def test_outputs_name_the_queue_and_definition(batch_graph):
    assert re.search(f":job-queue/{JOB}-queue-[0-9a-f]{{7}}$", batch_graph.outputs["batch_job_queue"])
    assert batch_graph.outputs["batch_job_definition"] == f"{JOB}-job"


@pytest.mark.parametrize(("fields", "problem"), [
    ({"vcpu": 3}, "batch.vcpu: 3 is not a Fargate size"),
    ({"vcpu": 4, "memoryMb": 4096}, "batch.memoryMb: 4096 MiB does not go with 4 vCPU"),
    ({"vcpu": 16, "memoryMb": 131072}, "batch.memoryMb: 131072"),
    ({"subnetIds": ["subnet-0123456789abcdef0"]}, "go together"),
    ({"subnetIds": ["vpc-1"], "securityGroupIds": ["sg-0123456789abcdef0"]}, "batch.subnetIds"),
    ({"network": "private"}, "batch.network"),
    ({"zones": 3}, "batch.zones"),
    ({"attempts": 11}, "batch.attempts"),
    ({"memoryFraction": 1.5}, "batch.memoryFraction"),
    ({"maxVcpus": 2, "vcpu": 4, "memoryMb": 8192}, "batch.maxVcpus"),
    ({"gpu": 1}, "batch.gpu: unknown"),
])
def test_bad_batch_config_names_the_field(fields, problem):
    with pytest.raises(ConfigError) as exc:
        parse_config({"region": REGION, "namePrefix": "mlk-test", "batch": fields}, ["train"])
    assert any(problem in p for p in exc.value.problems), exc.value.problems


def test_batch_config_defaults():
    assert parse_batch({}, []) == BatchConfig()
    cfg = parse_batch({"enabled": "true", "vcpu": "16", "memoryMb": "122880"}, problems := [])
    assert not problems and cfg.enabled and cfg.vcpu == 16 and cfg.memory_mb == 122880


def test_image_entrypoint_runs_lambda_handlers_and_batch_commands(tmp_path):
    """The train image's entrypoint (functions/Dockerfile): a handler name goes to Lambda's
    entrypoint, a command (Batch) runs as it is."""
    dockerfile = (ROOT / "functions" / "Dockerfile").read_text()
    line = next(x for x in dockerfile.splitlines() if "case \"$1\"" in x)
    script = line.strip().rstrip("\\").strip().strip("'")
    fake = tmp_path / "lambda-entrypoint.sh"
    fake.write_text('#!/bin/sh\necho "lambda: $*"\n')
    fake.chmod(0o755)
    (tmp_path / "entry").write_text("#!/bin/sh\n" + script.replace("/lambda-entrypoint.sh",
                                                                   str(fake)) + "\n")
    run = lambda *a: subprocess.run(["sh", str(tmp_path / "entry"), *a],  # noqa: E731
                                    capture_output=True, text=True).stdout.strip()
    assert run("train.handler") == "lambda: train.handler"
    assert run("python3", "-c", "print('batch')") == "batch"
    assert 'ENTRYPOINT ["/usr/local/bin/mlops-kit-entrypoint"]' in dockerfile
