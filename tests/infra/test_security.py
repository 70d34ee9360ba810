"""One test per security control, named after it, over the whole rendered graph."""

from __future__ import annotations

import json

import pytest

from infra.components.api import route_keys
from infra.config import LOG_RETENTION_DAYS
from mlops_kit.topology import default_topology
from tests.infra.harness import Graph, base_config, run_program

TOPO = default_topology()
BUCKET = "aws:s3/bucket:Bucket"


def buckets(graph: Graph) -> list[str]:
    names = [r.state["bucket"] for r in graph.of(BUCKET)]
    # the topology's stores plus the code bucket: a control that covers none would pass vacuously
    assert len(names) == len(TOPO.stores) + 1
    return names


def config_for_bucket(graph: Graph, typ: str, bucket: str) -> dict:
    found = [r.inputs for r in graph.of(typ) if r.inputs.get("bucket") == bucket]
    assert len(found) == 1, f"{bucket}: expected one {typ}, got {len(found)}"
    return found[0]


def role_policies(graph: Graph) -> dict[str, list[dict]]:
    out = {}
    for fn in TOPO.functions:
        pol = graph.one("aws:iam/rolePolicy:RolePolicy", f"mlk-test-{fn.name}-policy")
        out[fn.name] = json.loads(pol.inputs["policy"])["Statement"]
    return out


def all_policy_documents(graph: Graph) -> list[dict]:
    """Every policy the program writes: role, bucket, queue, key and ECR lifecycle excluded."""
    docs = [json.loads(r.inputs["policy"]) for r in graph.of("aws:iam/rolePolicy:RolePolicy")]
    docs += [json.loads(r.inputs["policy"]) for r in graph.of("aws:sqs/queuePolicy:QueuePolicy")]
    docs += [json.loads(r.inputs["policy"]) for r in graph.of("aws:s3/bucketPolicy:BucketPolicy")]
    docs += [json.loads(r.inputs["policy"]) for r in graph.of("aws:kms/key:Key")]
    docs += [json.loads(r.inputs["assumeRolePolicy"]) for r in graph.of("aws:iam/role:Role")]
    return docs


def test_s3_public_access_block(graph):
    for bucket in buckets(graph):
        pab = config_for_bucket(graph, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                                bucket)
        assert {k: pab.get(k) for k in ("blockPublicAcls", "blockPublicPolicy",
                                        "ignorePublicAcls", "restrictPublicBuckets")} == {
            "blockPublicAcls": True, "blockPublicPolicy": True,
            "ignorePublicAcls": True, "restrictPublicBuckets": True}
        own = config_for_bucket(graph, "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
                                bucket)
        assert own["rule"] == {"objectOwnership": "BucketOwnerEnforced"}  # ACLs disabled


def test_s3_encryption(graph):
    for bucket in buckets(graph):
        sse = config_for_bucket(
            graph, "aws:s3/bucketServerSideEncryptionConfiguration:"
            "BucketServerSideEncryptionConfiguration", bucket)
        (rule,) = sse["rules"]
        assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] in ("aws:kms", "AES256")
        assert rule["bucketKeyEnabled"] is True


def test_s3_versioning(graph):
    for bucket in buckets(graph):
        ver = config_for_bucket(graph, "aws:s3/bucketVersioning:BucketVersioning", bucket)
        assert ver["versioningConfiguration"]["status"] == "Enabled"


def test_s3_tls_only_policy(graph):
    for bucket in buckets(graph):
        doc = json.loads(config_for_bucket(graph, "aws:s3/bucketPolicy:BucketPolicy",
                                           bucket)["policy"])
        deny = [s for s in doc["Statement"] if s["Effect"] == "Deny"
                and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}]
        assert len(deny) == 1
        arn = f"arn:aws:s3:::{bucket}"
        assert sorted(deny[0]["Resource"]) == [arn, f"{arn}/*"]
        assert deny[0]["Principal"] == "*"
        assert not [s for s in doc["Statement"] if s["Effect"] == "Allow"]


def test_sqs_encryption(graph):
    queues = graph.of("aws:sqs/queue:Queue")
    assert len(queues) == 2 * len(TOPO.queues)
    for q in queues:
        assert q.inputs.get("sqsManagedSseEnabled") is True or q.inputs.get("kmsMasterKeyId"), \
            q.name


def test_every_queue_has_dlq(graph):
    for q in TOPO.queues:
        main = graph.one("aws:sqs/queue:Queue", f"mlk-test-{q.name}")
        dlq = graph.one("aws:sqs/queue:Queue", f"mlk-test-{q.dlq}")
        redrive = json.loads(main.inputs["redrivePolicy"])
        # at least 5 receives for a Lambda consumer (test_aws_deploy_rules: throttling)
        assert redrive == {"deadLetterTargetArn": dlq.state["arn"],
                           "maxReceiveCount": max(q.max_receives, 5)}
        assert dlq.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
        assert "redrivePolicy" not in dlq.inputs  # a DLQ does not redrive


def test_dynamodb_pitr(graph):
    (table,) = graph.of("aws:dynamodb/table:Table")
    assert table.inputs["pointInTimeRecovery"]["enabled"] is True
    assert table.inputs["serverSideEncryption"]["enabled"] is True
    assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
    assert table.inputs["deletionProtectionEnabled"] is True


def test_routes_auth_not_none(graph):
    routes = graph.of("aws:apigatewayv2/route:Route")
    assert routes
    for r in routes:
        assert r.inputs["authorizationType"] == "AWS_IAM", r.inputs["routeKey"]
    # and no unauthenticated way around it: no function URL, no $default catch-all route
    assert not graph.of("aws:lambda/functionUrl:FunctionUrl")
    assert all(r.inputs["routeKey"] != "$default" for r in routes)


def test_routes_auth_jwt_when_configured(package_dir):
    g = run_program(base_config(package_dir, authMode="jwt",
                                jwtIssuer="https://issuer.example.com/",
                                jwtAudience=json.dumps(["inference"])))
    (auth,) = g.of("aws:apigatewayv2/authorizer:Authorizer")
    assert auth.inputs["authorizerType"] == "JWT"
    assert auth.inputs["jwtConfiguration"] == {"issuer": "https://issuer.example.com/",
                                               "audiences": ["inference"]}
    routes = g.of("aws:apigatewayv2/route:Route")
    assert len(routes) == len(route_keys(TOPO.http)) == len(TOPO.http.routes)
    for r in routes:
        assert r.inputs["authorizationType"] == "JWT"
        assert r.inputs["authorizerId"] == auth.state.get("id", f"{auth.name}-id")


def _actions(statement: dict) -> list[str]:
    a = statement.get("Action", [])
    return [a] if isinstance(a, str) else list(a)


def test_no_wildcard_iam_actions(graph):
    docs = all_policy_documents(graph)
    assert len(docs) >= 2 * len(TOPO.functions)
    for doc in docs:
        for s in doc["Statement"]:
            if s["Effect"] == "Deny":
                continue  # denying everything (TLS-only) is not a grant
            for action in _actions(s):
                assert "*" not in action, f"wildcard action {action!r} in {s}"
            assert "NotAction" not in s and "NotResource" not in s
    # Resource "*" only where the service has no resource-level permissions (X-Ray) or in a
    # key policy (where "*" means the key itself)
    for fn, statements in role_policies(graph).items():
        for s in statements:
            if "*" in s["Resource"]:
                assert set(_actions(s)) == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_log_retention_set(graph):
    groups = graph.of("aws:cloudwatch/logGroup:LogGroup")
    assert len(groups) == len(TOPO.functions) + 1  # + API access logs
    for g in groups:
        assert g.inputs["retentionInDays"] in LOG_RETENTION_DAYS
        assert g.inputs["retentionInDays"] == 30
    for fn in TOPO.functions:  # each function logs to its own group, not an unmanaged one
        f = graph.one("aws:lambda/function:Function", f"mlk-test-{fn.name}")
        assert f.inputs["loggingConfig"]["logGroup"] == f"/aws/lambda/mlk-test-{fn.name}"


def test_tracing_is_opt_in(graph, package_dir):
    """X-Ray costs per trace: off by default (and no X-Ray grant), on for every function when
    the stack asks for it (with the grant X-Ray needs)."""
    def xray_granted(g):
        return {json.dumps(json.loads(p.inputs["policy"])).count("xray:PutTraceSegments") > 0
                for p in g.of("aws:iam/rolePolicy:RolePolicy")}

    for f in graph.of("aws:lambda/function:Function"):
        assert f.inputs["tracingConfig"] == {"mode": "PassThrough"}
    assert xray_granted(graph) == {False}
    traced = run_program(base_config(package_dir, tracing="true"))
    for f in traced.of("aws:lambda/function:Function"):
        assert f.inputs["tracingConfig"] == {"mode": "Active"}
    assert xray_granted(traced) == {True}


def test_alerts_topic_kms_encrypted(graph):
    (topic,) = graph.of("aws:sns/topic:Topic")
    (key,) = graph.of("aws:kms/key:Key")
    assert topic.inputs["kmsMasterKeyId"] == key.state["arn"]
    assert key.inputs["enableKeyRotation"] is True
    doc = json.loads(key.inputs["policy"])
    cw = [s for s in doc["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert cw and set(_actions(cw[0])) == {"kms:GenerateDataKey", "kms:Decrypt"}


def test_no_secrets_in_function_environment(graph):
    from mlops_kit.settings import Settings
    fields = {f"MLOPSKIT_{name.upper()}" for name in Settings.model_fields}
    for f in graph.of("aws:lambda/function:Function"):
        env = f.inputs["environment"]["variables"]
        assert set(env) <= fields, set(env) - fields  # names the kit reads, nothing else
        for name in env:
            assert not any(w in name for w in ("SECRET", "PASSWORD", "TOKEN", "KEY")), name


@pytest.mark.parametrize("control", ["deletionProtection"])
def test_deletion_protection_configurable(package_dir, control):
    g = run_program(base_config(package_dir, deletionProtection="false"))
    (table,) = g.of("aws:dynamodb/table:Table")
    assert table.inputs["deletionProtectionEnabled"] is False
    for b in g.of(BUCKET):
        assert b.inputs["forceDestroy"] is True
