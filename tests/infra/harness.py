"""Test harness: run the Pulumi program under mocks (no CLI, no cloud) and record the whole resource graph.

`run_program` sets the mocks on a fresh event loop, sets stack config through PULUMI_CONFIG (what
the CLI does), runs the same steps as `infra/__main__.main` inside a `@pulumi.runtime.test`
function (so every RPC is awaited and a failing apply fails the run), and returns every
`new_resource` call with its resolved, camelCase inputs plus the resolved stack outputs.
Graph tests then assert on that recorded state with plain asserts.

The mocks answer what the real providers answer where the program depends on it: docker-build's
`ref` is `repo:tag@sha256:<digest>` (never digest-only) and `digest` is `sha256:<digest>`;
ecr.getImage resolves a tag to a digest; computed names and ARNs have the providers' shapes.
Each resource's explicit dependencies (depends_on) and Python class are recorded too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT, ROOT / "src"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from infra import __main__ as program  # noqa: E402
from infra import lambda_zips  # noqa: E402
from mlops_kit.topology import default_topology  # noqa: E402

ACCOUNT, REGION = "123456789012", "eu-west-1"
PROJECT, STACK = "mlops-kit", "test"


@dataclass
class Res:
    typ: str
    name: str
    inputs: dict[str, Any]
    state: dict[str, Any]


@dataclass
class Graph:
    resources: list[Res]
    outputs: dict[str, Any] = field(default_factory=dict)
    parents: dict[tuple[str, str], str | None] = field(default_factory=dict)  # -> parent type
    depends_on: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict)
    classes: dict[tuple[str, str], type] = field(default_factory=dict)

    def of(self, typ: str) -> list[Res]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name: str) -> Res:
        found = [r for r in self.of(typ) if r.name == name]
        assert len(found) == 1, f"expected one {typ} named {name}, got {[r.name for r in self.of(typ)]}"
        return found[0]

    def by_state(self, typ: str, key: str, value: Any) -> Res:
        found = [r for r in self.of(typ) if r.state.get(key) == value]
        assert len(found) == 1, f"no single {typ} with {key}={value!r}"
        return found[0]


# EC2 resources whose id is a prefixed hex id (vpc-0a1b..., subnet-..., sg-...)
EC2_IDS = {"Vpc": "vpc", "Subnet": "subnet", "SecurityGroup": "sg", "RouteTable": "rtb",
           "VpcEndpoint": "vpce", "InternetGateway": "igw", "NatGateway": "nat",
           "Eip": "eipalloc"}


class GraphMocks(pulumi.runtime.Mocks):
    """Records every resource; fills in the computed attributes later resources read."""

    def __init__(self) -> None:
        self.resources: list[Res] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = dict(args.inputs)
        state = dict(inputs)
        name, typ = args.name, args.typ
        svc = typ.split(":")[1].split("/")[0]
        rid = f"{name}-id"
        if typ == "aws:s3/bucket:Bucket":
            rid = state["bucket"] = f"{name}-a1b2c3"
            state["arn"] = f"arn:aws:s3:::{rid}"
        elif typ == "aws:sqs/queue:Queue":
            state["name"] = name
            state["arn"] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
            rid = state["url"] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        elif typ == "aws:dynamodb/table:Table":
            rid = state["name"] = name
            state["arn"] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            rid = state["name"] = inputs.get("name", name)
            state["arn"] = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{rid}"
        elif typ == "aws:lambda/function:Function":
            rid = state["name"] = inputs.get("name", name)
            state["arn"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{rid}"
            state["invokeArn"] = (f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/"
                                  f"{state['arn']}/invocations")  # what Lambda answers
        elif typ == "aws:apigatewayv2/api:Api":
            rid = "api123"
            state["apiEndpoint"] = f"https://{rid}.execute-api.{REGION}.amazonaws.com"
            state["executionArn"] = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{rid}"
        elif typ == "aws:ecr/repository:Repository":
            state["registryId"] = ACCOUNT
            state["repositoryUrl"] = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{name}"
        elif typ == "aws:iam/role:Role":
            state["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{inputs.get('name', name)}"
        elif typ.startswith("aws:batch/"):  # Batch ARNs name the resource type and name
            kind = {"aws:batch/computeEnvironment:ComputeEnvironment": "compute-environment",
                    "aws:batch/jobQueue:JobQueue": "job-queue",
                    "aws:batch/jobDefinition:JobDefinition": "job-definition"}[typ]
            # autonamed ones get Pulumi's "-" + 7 random characters
            rid = state["name"] = inputs.get("name") or (
                f"{name}-{hashlib.sha256(name.encode()).hexdigest()[:7]}")
            state["arn"] = f"arn:aws:batch:{REGION}:{ACCOUNT}:{kind}/{rid}"
            if kind == "job-definition":
                state["arnPrefix"], state["revision"] = state["arn"], 1
                state["arn"] = rid = f"{state['arn']}:1"
        elif typ == "aws:cloudwatch/eventRule:EventRule":
            rid = state["name"] = inputs.get("name", f"{name}-1a2b3c")
            state["arn"] = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rid}"
        elif typ.startswith("aws:ec2/") and typ.split(":")[-1] in EC2_IDS:
            rid = f"{EC2_IDS[typ.split(':')[-1]]}-{hashlib.sha256(name.encode()).hexdigest()[:17]}"
        elif typ == "docker-build:index:Image":
            # what pulumi-docker-build answers: ref = the first tag + the pushed digest
            digest = "sha256:" + hashlib.sha256(inputs["tags"][0].encode()).hexdigest()
            state["digest"] = digest
            state["ref"] = f"{inputs['tags'][0]}@{digest}"
            state["contextHash"] = "0" * 64
        state.setdefault("arn", f"arn:aws:{svc}:{REGION}:{ACCOUNT}:{name}")
        state.setdefault("name", name)
        self.resources.append(Res(typ, name, inputs, state))
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/ci",
                    "userId": "AIDA", "id": ACCOUNT}, []
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws",
                    "reverseDnsPrefix": "com.amazonaws"}, []
        if args.token == "aws:ecr/getImage:getImage":
            tag = args.args.get("imageTag")
            digest = "sha256:" + hashlib.sha256(str(tag).encode()).hexdigest()
            registry = f"{args.args.get('registryId')}.dkr.ecr.{REGION}.amazonaws.com"
            return {"id": digest, "imageDigest": digest, "imageTag": tag, "imageTags": [tag],
                    "imageUri": f"{registry}/{args.args.get('repositoryName')}@{digest}",
                    "repositoryName": args.args.get("repositoryName"),
                    "registryId": args.args.get("registryId"), "imagePushedAt": 0,
                    "imageSizeInBytes": 1, "region": REGION}, []
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            zones = [f"{REGION}{z}" for z in "abc"]
            return {"id": REGION, "names": zones, "zoneIds": [f"euw1-az{i}" for i in (1, 2, 3)],
                    "groupNames": [REGION], "state": "available"}, []
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {"userName": "AWS", "password": "pw", "authorizationToken": "dG9rZW4=",
                    "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com",
                    "expiresAt": "2030-01-01T00:00:00Z", "id": REGION,
                    "registryId": ACCOUNT}, []
        raise AssertionError(f"unexpected invoke {args.token}")


def make_zips(out: Path) -> Path:
    """Small stand-ins for the packaged zips: real zips, no pip (packaging is tested apart)."""
    src = out / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "handler.py").write_text("def handler(event, context):\n    return {}\n")
    for fn in lambda_zips.zip_functions(default_topology(batch=True)):  # every function
        lambda_zips.write_zip({f"{fn}.py": src / "handler.py"}, out / f"{fn}.zip")
    return out


def max_prefix() -> str:
    """The longest namePrefix config accepts (24 chars): the worst case for name lengths."""
    return "mlk-" + "x" * 19 + "1"



def base_config(package_dir: Path, **overrides: Any) -> dict[str, Any]:
    cfg = {"aws:region": REGION, "namePrefix": "mlk-test", "packageDir": str(package_dir),
           "trainImageUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlk-train:abc123",
           "alarmEmail": "oncall@example.com", "logRetentionDays": "30",
           "memory": json.dumps({"serve": 2048})}
    cfg.update(overrides)
    return {k if ":" in k else f"{PROJECT}:{k}": v for k, v in cfg.items() if v is not None}


def run_program(config: dict[str, Any], run_main: bool = False,
                check: Callable[[dict[str, Any]], None] | None = None,
                preview: bool = False) -> Graph:
    """Run the program once under fresh mocks; return the recorded graph and outputs."""
    mocks = GraphMocks()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    old = os.environ.get("PULUMI_CONFIG")
    os.environ["PULUMI_CONFIG"] = json.dumps(config)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=STACK, preview=preview)
    outputs: dict[str, Any] = {}
    parents: dict[tuple[str, str], str | None] = {}
    depends: dict[tuple[str, str], list[tuple[str, str]]] = {}
    classes: dict[tuple[str, str], type] = {}

    active = [True]  # the root stack outlives this run: its transformations stay registered

    def record_parent(args: pulumi.ResourceTransformationArgs):
        if not active[0]:
            return None
        parent = args.opts.parent if args.opts else None
        ptype = parent.pulumi_resource_type if parent is not None else None
        key = (args.type_, args.name)
        parents[key] = None if ptype == "pulumi:pulumi:Stack" else ptype
        deps = (args.opts.depends_on if args.opts else None) or []
        depends[key] = [(d.pulumi_resource_type, d.pulumi_resource_name)
                        for d in (deps if isinstance(deps, list) else [deps])]
        classes[key] = type(args.resource)
        return None

    try:
        @pulumi.runtime.test
        def run():
            pulumi.runtime.register_stack_transformation(record_parent)
            if run_main:
                program.main()
                return None
            topology = default_topology()
            cfg = program.read_config(topology)
            topology = program.stack_topology(cfg)
            result = program.build(cfg, topology, program.zip_artifacts(cfg, topology))
            keys = list(result)

            def resolved(values):
                outputs.update(zip(keys, values, strict=True))
                if check is not None:
                    check(outputs)

            return pulumi.Output.all(*result.values()).apply(resolved)

        run()
    finally:
        active[0] = False
        if old is None:
            os.environ.pop("PULUMI_CONFIG", None)
        else:
            os.environ["PULUMI_CONFIG"] = old
        loop.close()
        asyncio.set_event_loop(None)
    return Graph(mocks.resources, outputs, parents, depends, classes)
