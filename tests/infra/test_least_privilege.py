"""Each function's role policy touches only its own resources, as the topology grants them."""

from __future__ import annotations

import json

import pytest

from infra.components.iam import Arns, statements
from mlops_kit.topology import Function, StoreGrant, default_topology
from tests.infra.harness import ACCOUNT, REGION, Graph

TOPO = default_topology()
P = "mlk-test"
WRITE = {"s3:PutObject", "s3:AbortMultipartUpload"}
READ = {"s3:GetObject", "s3:GetObjectVersion"}
TABLE_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                "dynamodb:BatchWriteItem"}


def policy(graph: Graph, fn: str) -> list[dict]:
    pol = graph.one("aws:iam/rolePolicy:RolePolicy", f"{P}-{fn}-policy")
    role = graph.one("aws:iam/role:Role", f"{P}-{fn}-role")
    assert pol.inputs["role"] == f"{role.name}-id"  # attached to this function's own role
    return json.loads(pol.inputs["policy"])["Statement"]


def grants(statements: list[dict]) -> set[tuple[str, str]]:
    """(action, resource) pairs the policy allows."""
    out = set()
    for s in statements:
        assert s["Effect"] == "Allow"
        for a in s["Action"]:
            for r in s["Resource"]:
                out.add((a, r))
    return out


def bucket_arn(graph: Graph, store: str) -> str:
    return graph.one("aws:s3/bucket:Bucket", f"{P}-{store}").state["arn"]


def arns(graph: Graph) -> dict[str, str]:
    return {
        "table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{P}-registry",
        "topic": graph.one("aws:sns/topic:Topic", f"{P}-alerts").state["arn"],
        "key": graph.one("aws:kms/key:Key", f"{P}-alerts-key").state["arn"],
    }


@pytest.mark.parametrize("fn", [f.name for f in TOPO.functions])
def test_each_function_policy_touches_only_its_own_resources(graph, fn):
    f = TOPO.function(fn)
    a = arns(graph)
    allowed_objects = set()
    for g in f.stores:
        actions = (READ if g.access in ("read", "readwrite") else set()) | \
                  (WRITE if g.access in ("write", "readwrite") else set())
        allowed_objects |= {(act, f"{bucket_arn(graph, g.store)}/{g.prefix}*") for act in actions}
    consumed = {q.name for q in TOPO.queues if q.consumer == fn}
    queue_arn = {q.name: f"arn:aws:sqs:{REGION}:{ACCOUNT}:{P}-{q.name}" for q in TOPO.queues}
    log_group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{P}-{fn}:*"

    stmts = policy(graph, fn)
    for action, resource in grants(stmts):
        service = action.split(":")[0]
        if service == "s3" and action != "s3:ListBucket":
            assert (action, resource) in allowed_objects, (action, resource)
        elif action == "s3:ListBucket":
            assert resource in {bucket_arn(graph, g.store) for g in f.stores
                                if g.access != "write"}
        elif service == "dynamodb":
            assert f.table and resource == a["table"]
            if f.table == "read":
                assert action not in TABLE_WRITES
        elif service == "sqs":
            if action in ("sqs:ReceiveMessage", "sqs:DeleteMessage",
                          "sqs:ChangeMessageVisibility"):
                assert resource in {queue_arn[q] for q in consumed}
            elif action == "sqs:SendMessage":
                assert resource in {queue_arn[q] for q in f.sends_to}
            else:
                assert resource in {queue_arn[q] for q in consumed | set(f.sends_to)}
        elif service == "sns":
            assert f.publishes and (action, resource) == ("sns:Publish", a["topic"])
        elif service == "kms":
            assert f.publishes and resource == a["key"]
        elif service == "logs":
            assert resource == log_group
        elif service == "xray":
            assert resource == "*"
        else:
            raise AssertionError(f"unexpected grant {action} on {resource}")
    # and everything the topology grants is actually there (a policy of nothing passes above)
    assert allowed_objects <= grants(stmts)
    for q in f.sends_to:
        assert ("sqs:SendMessage", queue_arn[q]) in grants(stmts)
    for q in consumed:
        assert ("sqs:ReceiveMessage", queue_arn[q]) in grants(stmts)


def test_s3_list_bucket_conditioned_on_prefix(graph):
    for f in TOPO.functions:
        lists = [s for s in policy(graph, f.name) if "s3:ListBucket" in s["Action"]]
        assert lists
        for s in lists:
            (bucket,) = s["Resource"]
            store = next(st.name for st in TOPO.stores if bucket_arn(graph, st.name) == bucket)
            readable = {f"{g.prefix}*" for g in f.stores
                        if g.store == store and g.access != "write"}
            assert set(s["Condition"]["StringLike"]["s3:prefix"]) == readable


def test_serve_cannot_write_models_or_touch_queues(graph):
    g = grants(policy(graph, "serve"))
    models = f"{bucket_arn(graph, 'artifacts')}/models/*"
    assert ("s3:GetObject", models) in g
    assert not any(r == models and a in WRITE for a, r in g)
    assert not any(a.startswith("sqs:") for a, _ in g)
    assert not any(a in TABLE_WRITES for a, _ in g)  # registry read-only
    assert ("s3:PutObject", f"{bucket_arn(graph, 'artifacts')}/captures/*") in g


def test_validate_cannot_write_models(graph):
    g = grants(policy(graph, "validate"))
    assert not any("/models/" in r for _, r in g)
    assert not any(a in WRITE and "/datasets/" in r for a, r in g)  # quarantine, never rewrite
    assert ("s3:PutObject", f"{bucket_arn(graph, 'data')}/quarantine/*") in g


def test_only_publishers_reach_the_topic(graph):
    for f in TOPO.functions:
        g = grants(policy(graph, f.name))
        assert any(a == "sns:Publish" for a, _ in g) == f.publishes


def test_iam_statements_for_a_readwrite_grant():
    fn = Function("x", "x.handler", "zip", 128, 10,
                  stores=(StoreGrant("s", "p/", "readwrite"),), table="read",
                  sends_to=("q",))
    a = Arns(buckets={"s": "arn:aws:s3:::b"}, table="arn:t", queues={"q": "arn:q", "c": "arn:c"},
             topic="arn:topic", topic_key="arn:key", log_group="arn:lg")
    st = statements(fn, a, consumes=("c",))
    g = grants(st)
    assert {("s3:GetObject", "arn:aws:s3:::b/p/*"), ("s3:PutObject", "arn:aws:s3:::b/p/*"),
            ("sqs:SendMessage", "arn:q"), ("sqs:ReceiveMessage", "arn:c"),
            ("logs:PutLogEvents", "arn:lg:*"), ("dynamodb:GetItem", "arn:t")} <= g
    assert not any(a in TABLE_WRITES for a, _ in g)
    assert not any(a.startswith(("sns:", "kms:")) for a, _ in g)
    assert ("sqs:SendMessage", "arn:c") not in g and ("sqs:ReceiveMessage", "arn:q") not in g
