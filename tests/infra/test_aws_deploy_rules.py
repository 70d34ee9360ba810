"""What AWS refuses when a real account deploys or runs the stack, refused here first (issue 25,
items 7-11). Each rule cites the provider's page; docs/deploy-aws.md's "Deploy-time checks"
lists them. Rendered under mocks for the default, Batch-enabled (with a prebuilt image in
another repository) and JWT stacks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from infra.batch_config import EPHEMERAL_GIB
from infra.components.queues import LAMBDA_MIN_RECEIVES
from tests.infra.harness import ACCOUNT, REGION, Graph, base_config, run_program
from tests.infra.iam_eval import allows

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "mlopskit-prod"  # the prefix docs/ci-cd.md's deploy policy is written for
OTHER_REPO = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/shared/mlk-train"

LOG_DELIVERY_PAGE = "https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-logging.html"
BATCH_SLR_PAGE = "https://docs.aws.amazon.com/batch/latest/userguide/using-service-linked-roles.html"
PASSROLE_PAGE = ("https://docs.aws.amazon.com/IAM/latest/UserGuide/"
                 "id_roles_use_passrole.html")
EC2_PAGE = "https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html"
ECR_PULL_PAGE = ("https://docs.aws.amazon.com/AmazonECS/latest/developerguide/"
                 "task_execution_IAM_role.html")
MISSING_DATA_PAGE = ("https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/"
                     "alarms-and-missing-data.html")
SQS_LAMBDA_PAGE = "https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html"
COGNITO_PAGE = ("https://docs.aws.amazon.com/service-authorization/latest/reference/"
                "list_amazoncognitouserpools.html")
KMS_PAGE = "https://docs.aws.amazon.com/kms/latest/developerguide/tag-authorization.html"
SSM_PAGE = ("https://docs.aws.amazon.com/service-authorization/latest/reference/"
            "list_awssystemsmanager.html")
AUTONAME_PAGE = "https://www.pulumi.com/docs/iac/concepts/resources/names/#autonaming"

CE, JQ, JD = ("aws:batch/computeEnvironment:ComputeEnvironment", "aws:batch/jobQueue:JobQueue",
              "aws:batch/jobDefinition:JobDefinition")


def batch(**fields) -> str:
    return json.dumps({"enabled": True, **fields})


@pytest.fixture(scope="module")
def stacks(package_dir) -> dict[str, Graph]:
    return {
        "default": run_program(base_config(package_dir, namePrefix=PREFIX)),
        "batch": run_program(base_config(package_dir, namePrefix=PREFIX, batch=batch(),
                                         trainImageUri=f"{OTHER_REPO}:v1")),
        "batch-nat": run_program(base_config(package_dir, namePrefix=PREFIX,
                                             batch=batch(network="nat"))),
        "jwt": run_program(base_config(package_dir, namePrefix=PREFIX, authMode="jwt",
                                       jwtIssuer="https://issuer.example.com",
                                       jwtAudience='["mlk"]')),
        "console": run_program(base_config(package_dir, namePrefix=PREFIX,
                                           consoleAuth="cognito")),
    }


def deploy_policy() -> dict:
    text = (ROOT / "docs" / "ci-cd.md").read_text()
    docs = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]
    (policy,) = [d for d in docs if any(s.get("Sid") == "Buckets" for s in d["Statement"])]
    return json.loads(json.dumps(policy).replace("REGION", REGION).replace("ACCOUNT", ACCOUNT))


def _role_arns(graph: Graph, container: dict) -> list[str]:
    return [container["executionRoleArn"], container["jobRoleArn"]]


# resource type -> the calls (action, resource, context) the provider makes to create it,
# beyond the service's own resource-scoped actions; with the page that documents them
def calls(graph: Graph, r) -> list[tuple[str, str, dict[str, str], str]]:
    region = {"aws:RequestedRegion": REGION}
    if r.typ == "aws:apigatewayv2/stage:Stage" and r.inputs.get("accessLogSettings"):
        return [(a, "*", region, LOG_DELIVERY_PAGE) for a in (
            "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
            "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
            "logs:DescribeResourcePolicies")]
    console = {"mlops-kit:component": "console"}
    if r.typ == "aws:cognito/userPool:UserPool":
        return [("cognito-idp:CreateUserPool", "*",
                 {**region, **{f"aws:RequestTag/{k}": v for k, v in console.items()}},
                 COGNITO_PAGE)]
    if r.typ in ("aws:cognito/userPoolClient:UserPoolClient",
                 "aws:cognito/userPoolDomain:UserPoolDomain"):
        pool = f"arn:aws:cognito-idp:{REGION}:{ACCOUNT}:userpool/{REGION}_abc123"
        action = ("cognito-idp:CreateUserPoolClient" if r.typ.endswith("Client")
                  else "cognito-idp:CreateUserPoolDomain")
        out = [(action, pool, {**region, **{f"aws:ResourceTag/{k}": v
                                            for k, v in console.items()}}, COGNITO_PAGE)]
        if r.typ.endswith("Domain"):
            out.append(("cognito-idp:DescribeUserPoolDomain", "*", region, COGNITO_PAGE))
        return out
    if r.typ == "aws:kms/key:Key" and (r.inputs.get("tags") or {}).get(
            "mlops-kit:component") == "console":
        return [("kms:CreateKey", "*", {**region, **{f"aws:RequestTag/{k}": v
                                                    for k, v in console.items()}}, KMS_PAGE)]
    if r.typ == "aws:ssm/parameter:Parameter":
        arn = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{r.inputs['name']}"
        return [(a, arn, region, SSM_PAGE) for a in ("ssm:PutParameter", "ssm:GetParameter",
                                                     "ssm:AddTagsToResource",
                                                     "ssm:DeleteParameter")] + [
            ("ssm:DescribeParameters", "*", region, SSM_PAGE)]
    if r.typ == CE:
        slr = (f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/batch.amazonaws.com/"
               "AWSServiceRoleForBatch")
        return [("batch:CreateComputeEnvironment", r.state["arn"], region, BATCH_SLR_PAGE),
                ("iam:CreateServiceLinkedRole", slr,
                 {**region, "iam:AWSServiceName": "batch.amazonaws.com"}, BATCH_SLR_PAGE)]
    if r.typ == JQ:
        return [("batch:CreateJobQueue", r.state["arn"], region, BATCH_SLR_PAGE)]
    if r.typ == JD:
        container = json.loads(r.inputs["containerProperties"])
        return [("batch:RegisterJobDefinition", r.state["arnPrefix"], region, BATCH_SLR_PAGE)] + [
            ("iam:PassRole", arn, {**region, "iam:PassedToService": "ecs-tasks.amazonaws.com"},
             PASSROLE_PAGE) for arn in _role_arns(graph, container)]
    ec2 = {"aws:ec2/vpc:Vpc": ["ec2:CreateVpc", "ec2:ModifyVpcAttribute"],
           "aws:ec2/subnet:Subnet": ["ec2:CreateSubnet"],
           "aws:ec2/routeTable:RouteTable": ["ec2:CreateRouteTable"],
           "aws:ec2/routeTableAssociation:RouteTableAssociation": ["ec2:AssociateRouteTable"],
           "aws:ec2/route:Route": ["ec2:CreateRoute"],
           "aws:ec2/internetGateway:InternetGateway": ["ec2:CreateInternetGateway",
                                                       "ec2:AttachInternetGateway"],
           "aws:ec2/eip:Eip": ["ec2:AllocateAddress"],
           "aws:ec2/natGateway:NatGateway": ["ec2:CreateNatGateway"],
           "aws:ec2/securityGroup:SecurityGroup": ["ec2:CreateSecurityGroup",
                                                   "ec2:AuthorizeSecurityGroupEgress",
                                                   "ec2:RevokeSecurityGroupEgress"],
           "aws:ec2/vpcEndpoint:VpcEndpoint": ["ec2:CreateVpcEndpoint"]}.get(r.typ)
    if ec2:
        return [(a, "*", region, EC2_PAGE) for a in (*ec2, "ec2:CreateTags",
                                                     "ec2:DescribeAvailabilityZones")]
    return []


def test_the_documented_deploy_role_may_make_every_call(stacks):
    """Item 7: the CI deploy role (docs/ci-cd.md) lacked the log-delivery actions the HTTP API
    stage's access logging needs, and everything a Batch-enabled stack creates."""
    policy = deploy_policy()
    checked: set[str] = set()
    for name, graph in stacks.items():
        for r in graph.resources:
            for action, resource, context, page in calls(graph, r):
                assert allows(policy, action, resource, context), (
                    f"{name}: {r.typ} {r.name}: the deploy role may not {action} on {resource} "
                    f"({page})")
                checked.add(r.typ)
    assert {"aws:apigatewayv2/stage:Stage", CE, JQ, JD, "aws:ec2/vpc:Vpc",
            "aws:ec2/natGateway:NatGateway", "aws:ec2/vpcEndpoint:VpcEndpoint",
            "aws:cognito/userPool:UserPool", "aws:cognito/userPoolDomain:UserPoolDomain",
            "aws:ssm/parameter:Parameter", "aws:kms/key:Key"} <= checked


def test_batch_execution_role_may_pull_the_configured_image(stacks):
    """Item 8: with trainImageUri set, Batch pulls that image with the execution role
    (ECR_PULL_PAGE): it must be allowed on the image's repository, not the stack's own empty one
    (CannotPullContainerError on every large job)."""
    graph = stacks["batch"]
    definitions = graph.of(JD)  # one per batch job (training, scoring): the same image
    assert len(definitions) == 2
    for jd in definitions:
        image = json.loads(jd.inputs["containerProperties"])["image"]
        assert image.startswith(OTHER_REPO + "@sha256:")
    policies = [json.loads(p.inputs["policy"]) for p in graph.of("aws:iam/rolePolicy:RolePolicy")
                if p.name.endswith("-execution-policy")]
    assert len(policies) == 2
    repo = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/shared/mlk-train"
    for policy in policies:
        for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"):
            assert allows(policy, action, repo), (action, ECR_PULL_PAGE)
        assert allows(policy, "ecr:GetAuthorizationToken", "*")
    # another stack's image (base_config's mlk-train): that repository, and only it
    own = stacks["batch-nat"]
    for own_policy in [json.loads(p.inputs["policy"]) for p in own.of(
            "aws:iam/rolePolicy:RolePolicy") if p.name.endswith("-execution-policy")]:
        assert allows(own_policy, "ecr:BatchGetImage",
                      f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/mlk-train")
        assert not allows(own_policy, "ecr:BatchGetImage", repo)


def test_replaceable_batch_resources_are_autonamed(stacks):
    """Item 10: a compute environment is replaced when its type changes (spot on/off) and the
    queue with it; Pulumi creates the replacement first, which a fixed name collides with
    (AUTONAME_PAGE). Both are autonamed."""
    for typ in (CE, JQ):
        (r,) = stacks["batch"].of(typ)
        assert not r.inputs.get("name"), (typ, r.inputs.get("name"))
        assert r.state["name"].startswith(f"{PREFIX}-train-large-")


def test_ephemeral_storage_comes_from_config(package_dir):
    g = run_program(base_config(package_dir, batch=batch(ephemeralStorageGb=100)))
    for jd in g.of(JD):  # every job definition (training and scoring)
        assert json.loads(jd.inputs["containerProperties"])["ephemeralStorage"] == {
            "sizeInGiB": 100}
    from infra.config import ConfigError, parse_config

    for bad in (EPHEMERAL_GIB[0] - 1, EPHEMERAL_GIB[1] + 1):
        with pytest.raises(ConfigError, match="batch.ephemeralStorageGb"):
            parse_config({"region": REGION, "namePrefix": "mlk-test",
                          "batch": {"enabled": True, "ephemeralStorageGb": bad}}, ["train"])


def _interface_endpoints(graph: Graph) -> list:
    return [r for r in graph.of("aws:ec2/vpcEndpoint:VpcEndpoint")
            if r.inputs["vpcEndpointType"] == "Interface"]


def test_endpoints_network_uses_one_zone_by_default(stacks, package_dir):
    """Interface endpoints are billed per hour per AZ: one zone unless batch.zones is 2."""
    default = run_program(base_config(package_dir, batch=batch()))
    for ep in _interface_endpoints(default):
        assert len(ep.inputs["subnetIds"]) == 1, ep.name
    two = run_program(base_config(package_dir, batch=batch(zones=2)))
    assert {len(ep.inputs["subnetIds"]) for ep in _interface_endpoints(two)} == {2}


def test_public_network_costs_nothing_idle_and_admits_nothing(package_dir):
    """network: public: no NAT gateway, no interface endpoint (the hourly charges), a route to
    an internet gateway, a public IP per task (Fargate pulls its image over it), no ingress."""
    g = run_program(base_config(package_dir, batch=batch(network="public")))
    assert not g.of("aws:ec2/natGateway:NatGateway") and not g.of("aws:ec2/eip:Eip")
    assert not _interface_endpoints(g)
    for jd in g.of(JD):
        assert json.loads(jd.inputs["containerProperties"])["networkConfiguration"] == {
            "assignPublicIp": "ENABLED"}
    (igw,) = g.of("aws:ec2/internetGateway:InternetGateway")
    tables = [t for t in g.of("aws:ec2/routeTable:RouteTable") if t.inputs.get("routes")]
    assert [rt["cidrBlock"] for t in tables for rt in t.inputs["routes"]] == ["0.0.0.0/0"]
    for sg in g.of("aws:ec2/securityGroup:SecurityGroup"):
        assert not sg.inputs.get("ingress"), sg.name
    ce = g.of(CE)[0].inputs["computeResources"]
    subnets = {f"subnet-{__import__('hashlib').sha256(s.name.encode()).hexdigest()[:17]}": s
               for s in g.of("aws:ec2/subnet:Subnet")}
    assert all(subnets[s].name.startswith("mlk-test-batch-public-") for s in ce["subnets"])


def test_no_alarm_is_in_alarm_on_a_fresh_stack(stacks):
    """Item 11: a new stack has no datapoints; an alarm that treats missing data as breaching
    is in ALARM from `pulumi up` on (MISSING_DATA_PAGE), as the monitor's heartbeat was."""
    for name, graph in stacks.items():
        alarms = graph.of("aws:cloudwatch/metricAlarm:MetricAlarm")
        assert alarms
        for a in alarms:
            assert a.inputs.get("treatMissingData", "missing") != "breaching", (name, a.name)
    did_not_run = [a for a in stacks["default"].of("aws:cloudwatch/metricAlarm:MetricAlarm")
                   if a.name.endswith("-monitor-did-not-run")]
    (a,) = did_not_run
    assert (a.inputs["namespace"], a.inputs["metricName"]) == ("AWS/Events", "FailedInvocations")
    (rule,) = [r for r in stacks["default"].of("aws:cloudwatch/eventRule:EventRule")
               if r.name.endswith("-monitor-schedule")]
    assert a.inputs["dimensions"] == {"RuleName": rule.state["name"]}


def test_lambda_consumed_queues_redrive_after_at_least_five_receives(stacks):
    """Item 11: a throttled poller's receives count; AWS asks maxReceiveCount >= 5 on a queue a
    Lambda function consumes (SQS_LAMBDA_PAGE), or new accounts' bursts land in the DLQ."""
    for name, graph in stacks.items():
        consumed = {m.inputs["eventSourceArn"] for m in
                    graph.of("aws:lambda/eventSourceMapping:EventSourceMapping")}
        assert consumed
        for q in graph.of("aws:sqs/queue:Queue"):
            if q.state["arn"] in consumed:
                redrive = json.loads(q.inputs["redrivePolicy"])
                assert redrive["maxReceiveCount"] >= LAMBDA_MIN_RECEIVES, (name, q.name)


SPOT_PAGE = ("https://docs.aws.amazon.com/AmazonECS/latest/developerguide/"
             "fargate-capacity-providers.html")
RETRY_PAGE = "https://docs.aws.amazon.com/batch/latest/userguide/job_retries.html"


@pytest.mark.parametrize("spot", [True, False])
def test_a_spot_interruption_is_retried(package_dir, spot):
    """Item 10: a Fargate Spot reclaim stops the task with stoppedReason "Your Spot Task was
    interrupted." (SPOT_PAGE); the job definition's evaluateOnExit (RETRY_PAGE, at most 5
    conditions, first match wins) must retry it, not EXIT on the catch-all. The old first rule,
    "Host EC2*", cannot match on Fargate."""
    import fnmatch

    g = run_program(base_config(package_dir, batch=batch(spot=spot)))
    (ce,) = g.of(CE)
    assert ce.inputs["computeResources"]["type"] == ("FARGATE_SPOT" if spot else "FARGATE")
    assert len(g.of(JD)) == 2  # training's and scoring's: the same constraints
    for jd in g.of(JD):
        rules = jd.inputs["retryStrategy"]["evaluateOnExits"]
        assert len(rules) <= 5
        reason = "Your Spot Task was interrupted."
        first = next(r for r in rules
                     if fnmatch.fnmatchcase(reason, r.get("onStatusReason", "\0"))
                     or r.get("onReason") == "*")
        assert first["action"] == "retry", (jd.name, rules, SPOT_PAGE)
        assert not any(r.get("onStatusReason", "").startswith("Host EC2") for r in rules)
