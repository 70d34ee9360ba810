"""One renderer: each role's policy is exactly `mlops_kit.iam.iam_policy` of that function,
the document the IAM-enforced emulation uses too. (What the policies allow is checked call by
call in test_policy_coverage.py.)"""

from __future__ import annotations

import json

import pytest

from mlops_kit.iam import PolicyArns, iam_policy
from mlops_kit.topology import default_topology
from tests.infra.harness import ACCOUNT, REGION, Graph

TOPO = default_topology()
P = "mlk-test"


def rendered(graph: Graph, fn: str) -> dict:
    pol = graph.one("aws:iam/rolePolicy:RolePolicy", f"{P}-{fn}-policy")
    role = graph.one("aws:iam/role:Role", f"{P}-{fn}-role")
    assert pol.inputs["role"] == f"{role.name}-id"  # attached to this function's own role
    return json.loads(pol.inputs["policy"])


def graph_arns(graph: Graph, fn: str) -> PolicyArns:
    return PolicyArns(
        buckets={s.name: graph.one("aws:s3/bucket:Bucket", f"{P}-{s.name}").state["arn"]
                 for s in TOPO.stores},
        table=graph.one("aws:dynamodb/table:Table", f"{P}-registry").state["arn"],
        queues={q.name: f"arn:aws:sqs:{REGION}:{ACCOUNT}:{P}-{q.name}" for q in TOPO.queues},
        topic=graph.one("aws:sns/topic:Topic", f"{P}-alerts").state["arn"],
        topic_key=graph.one("aws:kms/key:Key", f"{P}-alerts-key").state["arn"],
        log_group=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{P}-{fn}")


@pytest.mark.parametrize("fn", [f.name for f in TOPO.functions])
def test_role_policy_is_the_topology_rendering(graph, fn):
    assert rendered(graph, fn) == iam_policy(TOPO, fn, graph_arns(graph, fn))


def test_list_bucket_scoping(graph):
    """Listing is always conditioned on the listed prefixes; no role lists a whole bucket. A
    function that asks whether a key exists (or reads an upload that may be gone) lists that
    one key (S3ObjectStore.exists / _missing_if_denied) under the prefixes it probes."""
    data = graph.one("aws:s3/bucket:Bucket", f"{P}-data").state["arn"]
    artifacts = graph.one("aws:s3/bucket:Bucket", f"{P}-artifacts").state["arn"]
    lists = {fn.name: {(s["Resource"][0], json.dumps(s.get("Condition"), sort_keys=True))
                       for s in rendered(graph, fn.name)["Statement"]
                       if "s3:ListBucket" in s["Action"]}
             for fn in TOPO.functions}
    assert lists == {
        "validate": {(data, json.dumps({"StringLike": {"s3:prefix": [
            "datasets/*", "labels/*", "predictions/*", "scoring/*", "specs/*"]}}))},
        "train": {(data, json.dumps({"StringLike": {"s3:prefix": ["datasets/*", "specs/*"]}}))},
        # the console reads the serving health counters only, never the captures
        "serve": {(artifacts, json.dumps({"StringLike": {"s3:prefix": ["captures/_health/*"]}}))},
        "monitor": {(data, json.dumps({"StringLike": {"s3:prefix": ["labels/*", "specs/*"]}})),
                    (artifacts, json.dumps({"StringLike": {"s3:prefix": ["captures/*"]}}))},
    }
    assert all(cond != "null" for grants in lists.values() for _, cond in grants)


def test_no_statement_is_empty_or_wildcard_outside_xray(graph):
    for fn in TOPO.functions:
        for stmt in rendered(graph, fn.name)["Statement"]:
            assert stmt["Action"] and stmt["Resource"]
            assert not any("*" in a for a in stmt["Action"])
            assert stmt["Resource"] != ["*"]  # X-Ray (opt-in) is the only "*" resource
