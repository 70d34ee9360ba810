"""The suite's one moto harness (import as `from tests.moto_support import ...`).

- `moto_account()`: a bare in-process moto account with fresh boto3 clients (the adapter
  contract suite creates its own buckets, tables and queues in it).
- `aws_world()`: the deployment rendered into moto (`emulate.in_process`: buckets with S3->SQS
  notifications, queues with DLQ redrive, the table, the topic), the real handlers in
  functions/, the Lambda SQS event source (`SqsPump`) and optionally the HTTP gateway.

  With `enforce_iam` (the default) moto checks every request once the resources exist, and each
  function runs as an IAM user holding exactly the policy `mlops_kit.iam.iam_policy` renders for its
  role (plus the moto-only adaptations documented in `mlops_kit.emulate.iam`). The test itself
  plays the operator (an admin user: the environment's keys); `world.client_as(fn, service)`
  is the client a function's handler uses.

moto is always started before the first client, and the client cache is cleared on the way in
and out (clients are cached per identity: a stale one would point at a finished mock).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import yaml

REGION = "us-east-1"
TEST_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}


@contextmanager
def moto_account() -> Iterator[None]:
    """An in-process moto account (no resources) with fresh boto3 clients."""
    from moto import mock_aws

    from mlops_kit.adapters.aws import clear_clients

    old = {k: os.environ.get(k) for k in [*TEST_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(TEST_ENV)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    clear_clients()
    try:
        with mock_aws():
            yield
    finally:
        clear_clients()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class Function:
    """A function of the deployment: its module, and its handler under its own role."""

    name: str
    module: ModuleType
    handler: Any


@dataclass
class AwsWorld:
    res: Any  # mlops_kit.emulate.Resources
    topo: Any  # mlops_kit.topology.Topology
    fns: dict[str, Function]
    pumps: dict[str, Any]  # queue name -> SqsPump
    backend: Any  # the operator's view of the deployment (bootstrap.Backend)
    enforce_iam: bool
    _servers: list = field(default_factory=list)

    def client(self, service: str) -> Any:
        """The operator's client (the environment's keys: admin when IAM is enforced)."""
        from mlops_kit.adapters.aws import client

        return client(service, region=self.res.region)

    def client_as(self, function: str, service: str) -> Any:
        """The very client `function`'s handler uses (its role's keys)."""
        from mlops_kit.adapters.aws import acting_as, client

        with acting_as(self.res.identities.get(function)):
            return client(service, region=self.res.region)

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def sqs(self) -> Any:
        return self.client("sqs")

    def put(self, key: str, body: bytes) -> None:
        """An upload by the operator (or a data scientist) to the bucket that holds `key`."""
        from mlops_kit.topology import ARTIFACTS

        bucket = self.res.artifact_bucket if key.split("/")[0] + "/" in \
            self.topo.store(ARTIFACTS).prefixes else self.res.data_bucket
        self.s3.put_object(Bucket=bucket, Key=key, Body=body)

    def gateway(self) -> str:
        """Start the HTTP API gateway in front of serve (under serve's role); its base URL."""
        from mlops_kit.emulate import context_for, make_gateway

        fn = self.topo.http.function
        server = make_gateway(self.fns[fn].handler, lambda: context_for(self.topo, fn))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"


@contextmanager
def aws_world(*, enforce_iam: bool = True, spec: dict | None = None,
              extra_env: dict[str, str] | None = None, topology: Any = None
              ) -> Iterator[AwsWorld]:
    """The deployment under moto, driven through the real handlers; `spec` is uploaded to
    specs/. The s3:TestEvent S3 sends when notifications are configured is delivered to
    validate first (which ignores it), so the queues start empty."""
    from mlops_kit.bootstrap import aws_backend
    from mlops_kit.emulate import SqsPump, acting, context_for, in_process, load_function
    from mlops_kit.settings import Settings
    from mlops_kit.topology import default_topology

    topo = topology or default_topology()  # default_topology(batch=True): with AWS Batch
    env = {"MLOPSKIT_REFRESH_SECONDS": "0", "MLOPSKIT_CAPTURE_MAX_AGE_S": "0",
           **(extra_env or {})}
    with in_process(topo, extra_env=env, enforce_iam=enforce_iam) as res:
        fns = {}
        for f in topo.functions:
            module = load_function(f.name)
            fns[f.name] = Function(f.name, module, acting(res.identities.get(f.name),
                                                          module.handler))
        world = AwsWorld(res, topo, fns, {}, aws_backend(Settings()), enforce_iam)
        for q in topo.queues:
            world.pumps[q.name] = SqsPump(
                world.client_as(q.consumer, "sqs"), res.queue_urls[q.name],
                res.queue_arns[q.name], fns[q.consumer].handler, batch_size=q.batch_size,
                region=res.region, retry_after=0, control=world.sqs,
                context=lambda n=q.consumer: context_for(topo, n))
        validate = world.pumps["validate"]
        assert validate.drain() == 1 and validate.failed == 0  # the s3:TestEvent, ignored
        validate.delivered = 0
        if spec is not None:
            world.put(f"specs/{spec['name']}.yaml", yaml.safe_dump(spec).encode())
        try:
            yield world
        finally:
            for server in world._servers:
                server.shutdown()
                server.server_close()
