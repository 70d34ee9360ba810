"""Fixtures for the reliability suite: a served trained model (module-scoped, so hypothesis can
reuse it), and the AWS path under moto driven through the real handlers."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from mlops_kit.local.auth import ensure_token
from tests.support import FAST_SPEC, make_backend


@pytest.fixture(scope="module")
def served(tmp_path_factory, _trained_template):
    """(backend, api, token) for a trained churn model with auth on; one per test module."""
    from mlops_kit.local.server import build_api

    ws = tmp_path_factory.mktemp("served") / "ws"
    shutil.copytree(_trained_template, ws)
    backend = make_backend(ws)
    token = ensure_token(ws)
    assert token
    return backend, build_api(backend, auth=True, workspace=ws), token


@pytest.fixture(scope="module")
def server(served):
    from mlops_kit.local.server import ServerThread

    backend, api, token = served
    srv = ServerThread(api).start()
    yield srv, token, backend
    srv.stop()


@pytest.fixture
def cloud():
    """The AWS path under moto: the topology rendered in-process (buckets with S3->SQS
    notifications, queues with DLQ redrive, the table, the topic), the real handlers in
    functions/, and SQS event-source pumps (failed messages come back at once)."""
    import yaml

    from mlops_kit.adapters.aws import client
    from mlops_kit.bootstrap import aws_backend
    from mlops_kit.emulate import SqsPump, context_for, in_process, load_function
    from mlops_kit.settings import Settings
    from mlops_kit.topology import default_topology

    topo = default_topology()
    with in_process(topo, extra_env={"MLOPSKIT_REFRESH_SECONDS": "0",
                                     "MLOPSKIT_CAPTURE_MAX_AGE_S": "0"}) as res:
        c = lambda s: client(s, region=res.region)  # noqa: E731
        fns = {f.name: load_function(f.name) for f in topo.functions}
        pumps = {q.name: SqsPump(c("sqs"), res.queue_urls[q.name], res.queue_arns[q.name],
                                 fns[q.consumer].handler, batch_size=q.batch_size,
                                 region=res.region, retry_after=0,
                                 context=lambda n=q.consumer: context_for(topo, n))
                 for q in topo.queues}
        c("s3").put_object(Bucket=res.data_bucket, Key="specs/churn.yaml",
                           Body=yaml.safe_dump(FAST_SPEC).encode())
        # the s3:TestEvent sent when notifications were configured (the handler ignores it)
        assert pumps["validate"].drain() == 1 and pumps["validate"].failed == 0
        pumps["validate"].delivered = 0
        backend = aws_backend(Settings())  # from the MLOPSKIT_* the functions see
        yield SimpleNamespace(res=res, topo=topo, client=c, s3=c("s3"), sqs=c("sqs"), fns=fns,
                              pumps=pumps, backend=backend)
